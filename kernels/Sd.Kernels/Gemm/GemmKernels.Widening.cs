using System.Runtime.InteropServices;
using Sd.Kernels.Memory;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Gemm;

public static unsafe partial class GemmKernels
{
    /// <summary>
    /// Row blocks (of 16-bit weights' height) from which a product widens its weights once per call instead of once
    /// per row block: a long M otherwise converts every B micro-panel again for each of its row blocks.
    /// </summary>
    private const int WidenOnceMinRowBlocks = 4;

    /// <summary>
    /// The most floats of widened weights a calling thread keeps (24 MiB): SD 1.5's long-M products and fused
    /// feed-forwards need up to 4.9M (5120 x 640 + 640 x 2560 at 32x32 latents).
    /// </summary>
    private const long WidenedWeightsMaxFloats = 6L << 20;

    /// <summary>Values per widening task.</summary>
    private const int WidenChunk = 1 << 16;

    [ThreadStatic]
    private static ThreadScratch? t_widened;

    private struct WidenJob
    {
        public ushort* Source;
        public float* Destination;
        public long Count;
        public delegate*<ushort*, float*, nint, void> Kernel;
    }

    /// <summary>
    /// <paramref name="w"/> itself, or for 16-bit weights of a product long enough (<see cref="WidenOnceMinRowBlocks"/>)
    /// a float32 view of them widened on the pool into the calling thread's buffer at float <paramref name="offset"/>
    /// (the panel layout is the same; only the element size changes). Valid until this thread's next GEMM call.
    /// Widening is exact, so results are bit for bit those of the per-block path.
    /// </summary>
    private static PackedWeightsView WidenedOnce(PackedWeightsView w, int m, long offset) =>
        m < WidenOnceMinRowBlocks * WidenedMicroPanelsPerBlock * Selected.Mr ? w : Widened(w, offset);

    /// <summary>
    /// <paramref name="w"/> widened to float32 into the calling thread's buffer at float <paramref name="offset"/>
    /// (see <see cref="WidenedOnce"/>); itself when it is float32 already or does not fit.
    /// </summary>
    private static PackedWeightsView Widened(PackedWeightsView w, long offset)
    {
        long floats = (long)w.Panels * w.PanelWidth * w.K;
        if (w.Format == WeightFormat.F32 || offset + floats > WidenedWeightsMaxFloats)
        {
            return w;
        }
        var job = new WidenJob
        {
            Source = (ushort*)w.Data, Destination = ThreadScratch.Get(ref t_widened, (nint)WidenedWeightsMaxFloats) + offset, Count = floats,
            Kernel = Convert.Widen.PanelKernelFor(w.Format),
        };
        WorkerPool.Shared.Run(&WidenTask, &job, (int)((floats + WidenChunk - 1) / WidenChunk));
        w.Data = (byte*)job.Destination;
        w.Format = WeightFormat.F32;
        return w;
    }

    private static void WidenTask(void* state, int index)
    {
        WidenJob* job = (WidenJob*)state;
        long first = (long)index * WidenChunk;
        job->Kernel(job->Source + first, job->Destination + first, (nint)Math.Min(WidenChunk, job->Count - first));
    }
}
