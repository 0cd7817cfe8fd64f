using Sd.Kernels.Memory;

namespace Sd.Kernels.Tests;

/// <summary>The bookkeeping of kept memory on made-up address ranges: best fit, cutting, merging, eviction order.</summary>
public class FreeRangesTests
{
    private const nint Base = 1 << 30;
    private const nuint K64 = 64 << 10;

    [Fact]
    public void Empty_ranges_hold_nothing()
    {
        var ranges = new FreeRanges();
        Assert.Equal(0, ranges.Take(K64));
        Assert.Equal((0, 0u), ranges.TakeLargest());
    }

    [Fact]
    public void Take_cuts_the_front_of_the_smallest_range_that_holds_the_request()
    {
        var ranges = new FreeRanges();
        ranges.Put(Base, 8 * K64);
        ranges.Put(Base + 16 * (nint)K64, 3 * K64);
        ranges.Put(Base + 32 * (nint)K64, 2 * K64);
        Assert.Equal(Base + 16 * (nint)K64, ranges.Take(3 * K64)); // exact fit
        Assert.Equal(Base, ranges.Take(4 * K64)); // only the 8-block range holds it: its front half
        Assert.Equal(Base + 32 * (nint)K64, ranges.Take(K64)); // 2-block range beats the 4-block remainder
        Assert.Equal(Base + 4 * (nint)K64, ranges.Take(4 * K64)); // the remainder of the first cut
        Assert.Equal(0, ranges.Take(2 * K64));
        Assert.Equal(K64, ranges.Bytes);
        Assert.Equal(1, ranges.Count);
    }

    [Fact]
    public void Put_merges_touching_ranges_on_both_sides()
    {
        var ranges = new FreeRanges();
        ranges.Put(Base, K64);
        ranges.Put(Base + 2 * (nint)K64, K64);
        ranges.Put(Base + 4 * (nint)K64, K64); // not touching the others
        Assert.Equal(3, ranges.Count);
        ranges.Put(Base + (nint)K64, K64); // fills the gap between the first two
        Assert.Equal(2, ranges.Count);
        Assert.Equal(Base, ranges.Take(3 * K64));
        Assert.Equal(1, ranges.Count);
        Assert.Equal(K64, ranges.Bytes);
    }

    [Fact]
    public void TakeLargest_returns_ranges_largest_first()
    {
        var ranges = new FreeRanges();
        ranges.Put(Base, K64);
        ranges.Put(Base + 8 * (nint)K64, 3 * K64);
        ranges.Put(Base + 16 * (nint)K64, 2 * K64);
        Assert.Equal((Base + 8 * (nint)K64, 3 * K64), ranges.TakeLargest());
        Assert.Equal((Base + 16 * (nint)K64, 2 * K64), ranges.TakeLargest());
        Assert.Equal((Base, K64), ranges.TakeLargest());
        Assert.Equal(0u, ranges.Bytes);
    }
}

/// <summary>
/// Reuse of freed large blocks through the process-wide allocator. Its bookkeeping is global, so this collection runs
/// alone (no other test allocates meanwhile).
/// </summary>
[CollectionDefinition(nameof(AlignedMemoryTests), DisableParallelization = true)]
[Collection(nameof(AlignedMemoryTests))]
public unsafe class AlignedMemoryTests
{
    private const nuint MiB = 1 << 20;

    [LinuxFact]
    public void A_freed_large_block_is_reused_for_a_smaller_request_and_zeroed_when_asked()
    {
        AlignedMemory.ReleaseCached();
        byte* first = (byte*)AlignedMemory.Allocate(8 * MiB, zero: false);
        new Span<byte>(first, (int)(8 * MiB)).Fill(0xAB);
        AlignedMemory.Free(first);
        Assert.Equal(8L << 20, AlignedMemory.CachedBytes);

        byte* second = (byte*)AlignedMemory.Allocate(2 * MiB, zero: true);
        Assert.True(first == second, "the freed block's front should be reused");
        Assert.Equal(6L << 20, AlignedMemory.CachedBytes);
        Assert.True(new Span<byte>(second, (int)(2 * MiB)).IndexOfAnyExcept((byte)0) < 0, "asked for zeroed memory");
        Assert.Equal(0, (nint)second % AlignedMemory.CacheLine);

        AlignedMemory.Free(second);
        Assert.Equal(8L << 20, AlignedMemory.CachedBytes); // merged back into one range
        AlignedMemory.ReleaseCached();
        Assert.Equal(0, AlignedMemory.CachedBytes);
    }

    [LinuxFact]
    public void Kept_memory_is_returned_before_live_and_kept_memory_would_exceed_the_peak()
    {
        AlignedMemory.ReleaseCached();
        void* a = AlignedMemory.Allocate(4 * MiB, zero: false);
        void* b = AlignedMemory.Allocate(4 * MiB, zero: false);
        AlignedMemory.Free(a);
        AlignedMemory.Free(b); // peak 8 MiB, all of it kept (as one or two ranges)
        Assert.Equal(8L << 20, AlignedMemory.CachedBytes);

        // 16 MiB fits in no kept range; mapping it beside 8 MiB kept would exceed the 8 MiB peak, so all is returned.
        void* c = AlignedMemory.Allocate(16 * MiB, zero: true);
        Assert.Equal(0, AlignedMemory.CachedBytes);
        Assert.True(new Span<byte>(c, (int)(16 * MiB)).IndexOfAnyExcept((byte)0) < 0, "a fresh mapping is zero (not cleared again)");
        AlignedMemory.Free(c); // peak now 16 MiB
        void* d = AlignedMemory.Allocate(1 * MiB, zero: false);
        Assert.True(c == d);
        Assert.Equal(15L << 20, AlignedMemory.CachedBytes);
        AlignedMemory.Free(d);
        AlignedMemory.ReleaseCached();
    }

    [Fact]
    public void Small_blocks_are_not_kept()
    {
        AlignedMemory.ReleaseCached();
        void* small = AlignedMemory.Allocate(4096, zero: true);
        Assert.Equal(0, (nint)small % AlignedMemory.CacheLine);
        AlignedMemory.Free(small);
        Assert.Equal(0, AlignedMemory.CachedBytes);
    }
}

/// <summary>A fact about the Linux allocator path: skipped, with the reason, elsewhere.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "large blocks are mapped and kept for reuse on Linux only";
        }
    }
}
