using System.Runtime.InteropServices;

namespace Sd.Kernels.Memory;

/// <summary>
/// Native allocations for weights and activations: 64-byte aligned (a cache line, one AVX-512 vector); fresh blocks of
/// 4 MiB or more are 2 MiB aligned and advised to use transparent huge pages on Linux. A loaded SD 1.5 is several
/// gigabytes of freshly written memory: with 4 KiB pages that is a million page faults (seconds in a VM) and constant
/// TLB misses while GEMMs stream the weights.
/// <para>
/// On Linux, blocks of 64 KiB or more are mapped directly and, when freed, kept for reuse instead of returned to the
/// system, because fresh memory is expensive: the kernel zeroes every page on first touch, and in this VM that was
/// most of loading a component (a float32 SD 1.5 UNet: 43% of the load's CPU time in clear_page, 10% more in the
/// hypervisor's fault path). A sequential pipeline loads its components one after another and again for every request;
/// each load now lands in memory the previous component freed: a request is cut from the smallest kept range that
/// holds it, and freed blocks merge with kept neighbours. Kept and live memory together never exceed the most ever
/// live at once (a request that fits nowhere first returns kept ranges to the system), so reuse costs no peak memory.
/// <see cref="ReleaseCached"/> returns what is kept (a pipeline's Dispose does). On Linux the C heap (where 2 MiB-aligned
/// blocks come back in 4 KiB pages and freed ones stay resident in its free lists) only serves small blocks; elsewhere
/// it serves all, and nothing is kept.
/// </para>
/// </summary>
public static unsafe class AlignedMemory
{
    public const int CacheLine = 64;

    private const nuint HugePage = 2 << 20;
    private const nuint HugeThreshold = 4 << 20;
    private const int MadviseHugePage = 14;
    private const int MadviseCollapse = 25;
    private const int ProtReadWrite = 3;
    private const int MapPrivateAnonymous = 0x22;

    /// <summary>Blocks from this size are mapped and kept (Linux), their capacity a multiple of it.</summary>
    private const nuint LargeThreshold = 64 << 10;

    private static readonly object s_gate = new();

    /// <summary>Large blocks handed out: start -> capacity.</summary>
    private static readonly Dictionary<nint, nuint> s_live = new();

    private static readonly FreeRanges s_kept = new();

    private static nuint s_liveBytes;

    /// <summary>The most large-block memory ever live at once: the bound on live plus kept memory.</summary>
    private static nuint s_peakBytes;

    /// <summary>Bytes freed and kept for reuse.</summary>
    public static long CachedBytes
    {
        get
        {
            lock (s_gate)
            {
                return (long)s_kept.Bytes;
            }
        }
    }

    /// <summary>A block of at least <paramref name="bytes"/>, zeroed if <paramref name="zero"/>.</summary>
    public static void* Allocate(nuint bytes, bool zero)
    {
        bytes = Math.Max(bytes, 1);
        bool mapped = bytes >= LargeThreshold && OperatingSystem.IsLinux(), fresh = false;
        void* pointer = mapped
            ? AllocateLarge(bytes, out fresh)
            : NativeMemory.AlignedAlloc(bytes, bytes >= HugeThreshold ? HugePage : CacheLine);
        // A fresh mapping is zero already: clearing it would touch every page twice.
        if (zero && !(mapped && fresh))
        {
            NativeMemory.Clear(pointer, bytes);
        }
        return pointer;
    }

    private static void* AllocateLarge(nuint bytes, out bool fresh)
    {
        nuint capacity = checked(bytes + LargeThreshold - 1) & ~(LargeThreshold - 1);
        List<(nint Start, nuint Size)>? returned = null;
        nint start;
        lock (s_gate)
        {
            start = s_kept.Take(capacity);
            fresh = start == 0;
            if (fresh)
            {
                // Return kept ranges (largest first: none holds this request) until the new block fits the bound;
                // unmapped below, outside the lock.
                while (s_kept.Bytes > 0 && s_liveBytes + s_kept.Bytes + capacity > s_peakBytes)
                {
                    (returned ??= new()).Add(s_kept.TakeLargest());
                }
            }
            // Counted live now, so that concurrent requests see it while it is being mapped.
            s_liveBytes += capacity;
            s_peakBytes = Math.Max(s_peakBytes, s_liveBytes);
        }
        try
        {
            if (returned is not null)
            {
                foreach ((nint range, nuint size) in returned)
                {
                    _ = Munmap(range, size);
                }
            }
            if (fresh)
            {
                start = Map(capacity, bytes >= HugeThreshold ? HugePage : LargeThreshold);
            }
        }
        catch
        {
            lock (s_gate)
            {
                s_liveBytes -= capacity;
            }
            throw;
        }
        lock (s_gate)
        {
            s_live.Add(start, capacity);
        }
        if (bytes >= HugeThreshold)
        {
            AdviseHugePages(start, bytes, collapse: !fresh);
        }
        return (void*)start;
    }

    /// <summary>Fresh anonymous memory: one alignment more is mapped, then the unaligned head and tail are unmapped.</summary>
    private static nint Map(nuint capacity, nuint alignment)
    {
        nuint length = capacity + alignment;
        nint mapped = Mmap(0, length, ProtReadWrite, MapPrivateAnonymous, -1, 0);
        if (mapped == -1)
        {
            throw new OutOfMemoryException($"out of memory: could not map {capacity / 1048576.0:0.#} MiB (errno {Marshal.GetLastPInvokeError()}); a smaller image, batch or tile size needs less");
        }
        nint start = (nint)(((nuint)mapped + alignment - 1) & ~(alignment - 1));
        nuint head = (nuint)(start - mapped);
        if (head > 0)
        {
            _ = Munmap(mapped, head);
        }
        if (length - head > capacity)
        {
            _ = Munmap(start + (nint)capacity, length - head - capacity);
        }
        return start;
    }

    /// <summary>
    /// Asks for huge pages over the whole 2 MiB pages inside [start, start + bytes): advising the partial ones at the
    /// ends too would back up to 2 MiB past the block with memory nobody uses (hundreds of MB over a model's weights).
    /// The advice only shapes future page faults; a reused range may already be faulted in 4 KiB pages (it held
    /// blocks under 4 MiB, which are not advised), so <paramref name="collapse"/> also has the kernel (Linux 6.1+; older ones refuse harmlessly) move it
    /// into huge pages now. The step time depends on it: txt2img's second pipeline in memory the C heap had faulted in
    /// 4 KiB pages ran 3.45 s per step for F32 weights, 3.28 s once collapsed.
    /// </summary>
    private static void AdviseHugePages(nint start, nuint bytes, bool collapse)
    {
        nint first = (nint)(((nuint)start + HugePage - 1) & ~(HugePage - 1));
        nint end = (nint)((nuint)(start + (nint)bytes) & ~(HugePage - 1));
        if (end <= first)
        {
            return;
        }
        _ = Madvise(first, (nuint)(end - first), MadviseHugePage);
        if (collapse)
        {
            _ = Madvise(first, (nuint)(end - first), MadviseCollapse);
        }
    }

    /// <summary>Frees a block from <see cref="Allocate"/>; a large one is kept for reuse.</summary>
    public static void Free(void* pointer)
    {
        lock (s_gate)
        {
            if (s_live.Remove((nint)pointer, out nuint capacity))
            {
                s_liveBytes -= capacity;
                s_kept.Put((nint)pointer, capacity);
                return;
            }
        }
        NativeMemory.AlignedFree(pointer);
    }

    /// <summary>Returns every kept block to the system; the bound restarts from what is live now.</summary>
    public static void ReleaseCached()
    {
        lock (s_gate)
        {
            while (s_kept.Bytes > 0)
            {
                (nint range, nuint size) = s_kept.TakeLargest();
                _ = Munmap(range, size);
            }
            s_peakBytes = s_liveBytes;
        }
    }

    /// <summary>
    /// Drops this process's mapping of the whole pages inside [address, address + bytes) (Linux madvise DONTNEED; a
    /// no-op elsewhere): file-backed pages leave the resident set and stay in the page cache.
    /// </summary>
    public static void ReleasePages(void* address, long bytes)
    {
        if (!OperatingSystem.IsLinux() || bytes <= 0)
        {
            return;
        }
        long page = Environment.SystemPageSize;
        long start = ((long)address + page - 1) / page * page;
        long end = ((long)address + bytes) / page * page;
        if (end > start)
        {
            _ = Madvise((nint)start, (nuint)(end - start), MadviseDontNeed);
        }
    }

    private const int MadviseDontNeed = 4;
    private const int MadvisePopulateRead = 22;

    /// <summary>
    /// Maps the pages of [address, address + bytes) of a file mapping into this process in one call (Linux 5.14+
    /// madvise POPULATE_READ; refused harmlessly by older kernels, a no-op elsewhere) instead of one page fault per
    /// few pages as they are first read. Measured while packed weights were still read through the mapping: a float32
    /// SD 1.5 UNet loaded again (its file pages cached, its memory reused) in 1.8 s instead of 1.9-2.0; those weights
    /// now come by positional reads, and the mapping serves the small and widened tensors.
    /// </summary>
    public static void PopulatePages(void* address, long bytes)
    {
        if (!OperatingSystem.IsLinux() || bytes <= 0)
        {
            return;
        }
        long page = Environment.SystemPageSize;
        long start = (long)address / page * page;
        _ = Madvise((nint)start, (nuint)((long)address + bytes - start), MadvisePopulateRead);
    }

    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(nint address, nuint length, int advice);

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [DllImport("libc", EntryPoint = "munmap")]
    private static extern int Munmap(nint address, nuint length);
}
