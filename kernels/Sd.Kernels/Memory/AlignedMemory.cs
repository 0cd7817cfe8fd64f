using System.Runtime.InteropServices;

namespace Sd.Kernels.Memory;

/// <summary>
/// Native allocations for weights and activations: 64-byte aligned (a cache line, one AVX-512 vector); blocks of
/// 4 MiB or more are 2 MiB aligned and advised to use transparent huge pages on Linux. A loaded SD 1.5 is several
/// gigabytes of freshly written memory: with 4 KiB pages that is a million page faults (seconds in a VM) and constant
/// TLB misses while GEMMs stream the weights.
/// </summary>
public static unsafe class AlignedMemory
{
    public const int CacheLine = 64;

    private const nuint HugePage = 2 << 20;
    private const nuint HugeThreshold = 4 << 20;
    private const int MadviseHugePage = 14;
    private const int MadviseCollapse = 25;

    public static void* Allocate(nuint bytes, bool zero)
    {
        bytes = Math.Max(bytes, 1);
        bool huge = bytes >= HugeThreshold;
        void* pointer = NativeMemory.AlignedAlloc(bytes, huge ? HugePage : CacheLine);
        if (huge && OperatingSystem.IsLinux())
        {
            // Only the whole huge pages inside the block: advising the partial last one too would back up to 2 MiB
            // past the block's end with memory nobody uses (hundreds of MB over a model's weights), and that range
            // is not ours to advise.
            nuint whole = bytes & ~(HugePage - 1);
            _ = Madvise((nint)pointer, whole, MadviseHugePage);
            // The advice only shapes future page faults. Memory a process frees and allocates again (a second
            // pipeline, the UNet after the text encoder) comes back from the C heap already faulted in 4 KiB pages;
            // collapsing the range (Linux 6.1+; an older kernel refuses it harmlessly) gives it huge pages now.
            // txt2img's timed run (the process's second pipeline), 4 steps, alternating: F16 UNet in huge pages
            // 1.43 -> 1.85-1.97 GB, 3.37-3.47 -> 3.34-3.37 s per step; F32 3.05 -> 3.66 GB, 3.45 -> 3.28 s per step,
            // VAE decode 3.12 -> 2.84 s. A first load, all fresh memory, measured the same.
            _ = Madvise((nint)pointer, whole, MadviseCollapse);
        }
        if (zero)
        {
            NativeMemory.Clear(pointer, bytes);
        }
        return pointer;
    }

    public static void Free(void* pointer) => NativeMemory.AlignedFree(pointer);

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

    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(nint address, nuint length, int advice);
}
