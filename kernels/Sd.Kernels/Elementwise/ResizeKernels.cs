using System.Runtime.CompilerServices;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// Channels-last data movement for the UNet/VAE: nearest-neighbour upsampling (Upsample2D) and copying channel
/// ranges between row-strided tensors (the skip-connection concatenation). Pure copies: whole C-runs and whole
/// output rows go through the runtime's memmove, which is already vectorized, so there are no per-width variants;
/// the _Scalar methods are the per-element references.
/// </summary>
public static unsafe class ResizeKernels
{
    /// <summary>
    /// PyTorch's <c>nearest</c> source index: min(floor(dst * scale), in - 1) with scale = (float)in / out, all in
    /// float32 as aten's nearest_idx computes it (its identity and exact-2x shortcuts give the same indices).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NearestIndex(int dst, int inSize, int outSize)
    {
        if (outSize == 2 * inSize)
        {
            return dst >> 1;
        }
        float scale = (float)inSize / outSize;
        return Math.Min((int)MathF.Floor(dst * scale), inSize - 1);
    }

    /// <summary>Reference: [n, hIn, wIn, c] -> [n, hOut, wOut, c], one element at a time.</summary>
    public static void Nearest_Scalar(float* src, float* dst, int n, int hIn, int wIn, int hOut, int wOut, int channels)
    {
        for (int b = 0; b < n; b++)
        {
            for (int oy = 0; oy < hOut; oy++)
            {
                int sy = NearestIndex(oy, hIn, hOut);
                for (int ox = 0; ox < wOut; ox++)
                {
                    int sx = NearestIndex(ox, wIn, wOut);
                    for (int c = 0; c < channels; c++)
                    {
                        dst[(((long)b * hOut + oy) * wOut + ox) * channels + c] =
                            src[(((long)b * hIn + sy) * wIn + sx) * channels + c];
                    }
                }
            }
        }
    }

    /// <summary>
    /// [n, hIn, wIn, c] -> [n, hOut, wOut, c] (src and dst must not overlap). An output row whose source row is the
    /// previous output row's (every odd row at 2x) is one copy of that row; other rows copy one C-run per pixel.
    /// Large outputs are tiled over output rows on <see cref="WorkerPool.Shared"/>.
    /// </summary>
    public static void Nearest(float* src, float* dst, int n, int hIn, int wIn, int hOut, int wOut, int channels)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Elementwise);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(channels);
        if (hIn < 1 || wIn < 1 || hOut < 0 || wOut < 0)
        {
            throw new ArgumentException($"cannot resize {hIn}x{wIn} to {hOut}x{wOut}");
        }
        long rows = (long)n * hOut;
        var job = new ResizeJob
        {
            Src = src,
            Dst = dst,
            HIn = hIn,
            WIn = wIn,
            HOut = hOut,
            WOut = wOut,
            Channels = channels,
            Rows = (nint)rows,
            Tiles = Tiling.Count(rows * wOut * channels, rows),
        };
        if (rows == 0 || wOut == 0 || channels == 0)
        {
            return;
        }
        if (job.Tiles == 1)
        {
            NearestTile(&job, 0);
        }
        else
        {
            WorkerPool.Shared.Run(&NearestTile, &job, job.Tiles);
        }
    }

    private struct ResizeJob
    {
        public float* Src;
        public float* Dst;
        public int HIn;
        public int WIn;
        public int HOut;
        public int WOut;
        public int Channels;
        public nint Rows;
        public int Tiles;
    }

    private static void NearestTile(void* context, int tile)
    {
        ResizeJob* job = (ResizeJob*)context;
        nint first = Tiling.Start(tile, job->Tiles, job->Rows);
        nint end = Tiling.Start(tile + 1, job->Tiles, job->Rows);
        nint channels = job->Channels;
        nint outRow = job->WOut * channels;
        nuint runBytes = (nuint)channels * sizeof(float);
        for (nint row = first; row < end; row++)
        {
            int b = (int)(row / job->HOut);
            int oy = (int)(row % job->HOut);
            int sy = NearestIndex(oy, job->HIn, job->HOut);
            float* output = job->Dst + row * outRow;
            // Same source row as the output row above, which this tile has already written.
            if (row > first && oy > 0 && NearestIndex(oy - 1, job->HIn, job->HOut) == sy)
            {
                Buffer.MemoryCopy(output - outRow, output, (nuint)outRow * sizeof(float), (nuint)outRow * sizeof(float));
                continue;
            }
            float* input = job->Src + ((nint)b * job->HIn + sy) * job->WIn * channels;
            for (int ox = 0; ox < job->WOut; ox++)
            {
                float* run = input + NearestIndex(ox, job->WIn, job->WOut) * channels;
                Buffer.MemoryCopy(run, output + ox * channels, runBytes, runBytes);
            }
        }
    }

    /// <summary>Reference for <see cref="CopyChannels"/>.</summary>
    public static void CopyChannels_Scalar(float* src, nint srcStride, float* dst, nint dstStride, nint rows, int channels)
    {
        for (nint r = 0; r < rows; r++)
        {
            for (int c = 0; c < channels; c++)
            {
                dst[r * dstStride + c] = src[r * srcStride + c];
            }
        }
    }

    /// <summary>
    /// Copies <paramref name="channels"/> floats of each of <paramref name="rows"/> rows from src (row stride
    /// <paramref name="srcStride"/>) to dst (row stride <paramref name="dstStride"/>). Offset dst by a channel
    /// count to write a channel slice: torch.cat([a, b], dim=-1) is CopyChannels(a, Ca, dst, Ca+Cb, rows, Ca)
    /// then CopyChannels(b, Cb, dst + Ca, Ca+Cb, rows, Cb). src and dst must not overlap.
    /// </summary>
    public static void CopyChannels(float* src, nint srcStride, float* dst, nint dstStride, nint rows, int channels)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Elementwise);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(channels);
        var job = new CopyJob
        {
            Src = src,
            SrcStride = srcStride,
            Dst = dst,
            DstStride = dstStride,
            Rows = rows,
            Channels = channels,
            Tiles = Tiling.Count((long)rows * channels, rows),
        };
        if (rows == 0 || channels == 0)
        {
            return;
        }
        if (job.Tiles == 1)
        {
            CopyTile(&job, 0);
        }
        else
        {
            WorkerPool.Shared.Run(&CopyTile, &job, job.Tiles);
        }
    }

    /// <summary>dst [rows, ca + cb] = concat(a [rows, ca], b [rows, cb]) along channels.</summary>
    public static void ConcatChannels(float* a, int ca, float* b, int cb, float* dst, nint rows)
    {
        using var profile = Diagnostics.KernelProfiler.Measure(Diagnostics.KernelKind.Elementwise);
        CopyChannels(a, ca, dst, ca + cb, rows, ca);
        CopyChannels(b, cb, dst + ca, ca + cb, rows, cb);
    }

    private struct CopyJob
    {
        public float* Src;
        public nint SrcStride;
        public float* Dst;
        public nint DstStride;
        public nint Rows;
        public int Channels;
        public int Tiles;
    }

    private static void CopyTile(void* context, int tile)
    {
        CopyJob* job = (CopyJob*)context;
        nint first = Tiling.Start(tile, job->Tiles, job->Rows);
        nint end = Tiling.Start(tile + 1, job->Tiles, job->Rows);
        nuint bytes = (nuint)job->Channels * sizeof(float);
        if (job->SrcStride == job->Channels && job->DstStride == job->Channels)
        {
            // Both dense: the tile is one contiguous block.
            nuint total = bytes * (nuint)(end - first);
            Buffer.MemoryCopy(job->Src + first * job->Channels, job->Dst + first * job->Channels, total, total);
            return;
        }
        for (nint r = first; r < end; r++)
        {
            Buffer.MemoryCopy(job->Src + r * job->SrcStride, job->Dst + r * job->DstStride, bytes, bytes);
        }
    }
}
