using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Convolution;

/// <summary>
/// The F(4x4, 3x3) input transform V = B^T d B (6x6 input tile -> 36 values) and output transform Y = A^T M A
/// (36 values -> 4x4 output tile), applied to a vector of channels at a time (channels are contiguous in NHWC: 16 per
/// AVX-512 vector, then 8, then a scalar tail). Columns first, then rows, each a 1-D 6-point transform.
/// </summary>
public static unsafe class WinogradTransforms
{
    /// <summary>
    /// Input tile at (y0, x0) (may stick out of the image: zero padding) of image <paramref name="image"/>
    /// [H, W, C] (pixel stride <paramref name="pixelStride"/> floats) -> v[p * ldv + (c / 16) * groupStride + c % 16]
    /// for the 36 positions p: channels in groups of 16, <paramref name="groupStride"/> floats apart (16: contiguous;
    /// MR x 16: a tile's row of <see cref="Gemm.ChannelGroupPanel"/> micro-panels).
    /// <paramref name="nonTemporal"/> writes V's whole vectors with streaming stores; it needs v, ldv and
    /// groupStride 64-byte aligned, and the caller fences before another thread reads V.
    /// </summary>
    public static void InputTile(float* image, int height, int width, int channels, nint pixelStride, int y0, int x0, float* v, nint ldv,
        nint groupStride, bool nonTemporal)
    {
        int c = nonTemporal
            ? InputChannels<StreamingStore>(image, height, width, channels, pixelStride, y0, x0, v, ldv, groupStride)
            : InputChannels<CachedStore>(image, height, width, channels, pixelStride, y0, x0, v, ldv, groupStride);
        for (; c < channels; c++)
        {
            InputTileScalar(image, height, width, pixelStride, y0, x0, c, v + ChannelOffset(c, groupStride), ldv);
        }
    }

    /// <summary>Where channel c sits in a tile's row of V.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static nint ChannelOffset(int c, nint groupStride) => (c >> 4) * groupStride + (c & 15);

    /// <summary>The input transform for whole vectors of channels; returns the first channel left.</summary>
    private static int InputChannels<TStore>(float* image, int height, int width, int channels, nint pixelStride, int y0, int x0, float* v, nint ldv,
        nint groupStride)
        where TStore : struct, IVectorStore
    {
        int c = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            c = InputChannels<Vector512<float>, F32x16, TStore>(image, height, width, channels, pixelStride, y0, x0, v, ldv, groupStride, c);
        }
        return InputChannels<Vector256<float>, F32x8, TStore>(image, height, width, channels, pixelStride, y0, x0, v, ldv, groupStride, c);
    }

    /// <summary>
    /// The input transform for whole vectors of channels from <paramref name="c"/>; returns the first channel left.
    /// Columns first, straight from the image into a 6x6 stack tile, then rows from the tile straight to V: one
    /// round trip through the stack per value (transforming the tile in place took three, and the tile's stores
    /// and reloads, not the arithmetic, bounded the transform).
    /// </summary>
    [SkipLocalsInit]
    private static int InputChannels<TVec, V, TStore>(float* image, int height, int width, int channels, nint pixelStride, int y0, int x0, float* v, nint ldv,
        nint groupStride, int c)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec>
        where TStore : struct, IVectorStore
    {
        TVec* t = stackalloc TVec[36];
        bool inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= height && x0 + 6 <= width;
        nint rowStride = width * pixelStride;
        float* origin = image + (y0 * width + x0) * pixelStride;
        for (; c <= channels - V.Count; c += V.Count)
        {
            for (int j = 0; j < 6; j++)
            {
                // Column j of the input tile (pixels (y0 + i, x0 + j), zero outside the image) -> t[i * 6 + j].
                float* pixel = origin + j * pixelStride + c;
                bool columnInside = inside || (uint)(x0 + j) < (uint)width;
                TVec d0 = InputPixel<TVec, V>(pixel, inside, columnInside, y0, height);
                TVec d1 = InputPixel<TVec, V>(pixel + rowStride, inside, columnInside, y0 + 1, height);
                TVec d2 = InputPixel<TVec, V>(pixel + 2 * rowStride, inside, columnInside, y0 + 2, height);
                TVec d3 = InputPixel<TVec, V>(pixel + 3 * rowStride, inside, columnInside, y0 + 3, height);
                TVec d4 = InputPixel<TVec, V>(pixel + 4 * rowStride, inside, columnInside, y0 + 4, height);
                TVec d5 = InputPixel<TVec, V>(pixel + 5 * rowStride, inside, columnInside, y0 + 5, height);
                InputTransform1D<TVec, V, CachedStore>(d0, d1, d2, d3, d4, d5, (float*)(t + j), 6 * V.Count);
            }
            for (int i = 0; i < 6; i++)
            {
                TVec* row = t + i * 6;
                InputTransform1D<TVec, V, TStore>(row[0], row[1], row[2], row[3], row[4], row[5], v + i * 6 * ldv + ChannelOffset(c, groupStride), ldv);
            }
        }
        return c;
    }

    /// <summary>The input pixel at <paramref name="pixel"/>, or zero where row <paramref name="y"/> or its column is outside the image.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVec InputPixel<TVec, V>(float* pixel, bool inside, bool columnInside, int y, int height)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec> =>
        inside || (columnInside && (uint)y < (uint)height) ? V.Load(pixel) : V.Zero;

    /// <summary>The 1-D 6-point input transform B^T d of (d0 .. d5), output k stored at dst + k * stride (in floats).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputTransform1D<TVec, V, TStore>(TVec d0, TVec d1, TVec d2, TVec d3, TVec d4, TVec d5, float* dst, nint stride)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec>
        where TStore : struct, IVectorStore
    {
        TVec four = V.Create(4f), five = V.Create(5f), two = V.Create(2f);
        TVec t0 = V.Subtract(d4, V.Multiply(four, d2)); // d4 - 4 d2
        TVec t1 = V.Subtract(d3, V.Multiply(four, d1)); // d3 - 4 d1
        TVec t2 = V.Subtract(d4, d2);
        TVec t3 = V.Multiply(two, V.Subtract(d3, d1));
        TStore.Store<TVec, V>(V.FusedMultiplyAdd(four, d0, V.Subtract(d4, V.Multiply(five, d2))), dst);
        TStore.Store<TVec, V>(V.Add(t0, t1), dst + stride);
        TStore.Store<TVec, V>(V.Subtract(t0, t1), dst + 2 * stride);
        TStore.Store<TVec, V>(V.Add(t2, t3), dst + 3 * stride);
        TStore.Store<TVec, V>(V.Subtract(t2, t3), dst + 4 * stride);
        TStore.Store<TVec, V>(V.FusedMultiplyAdd(four, d1, V.Subtract(d5, V.Multiply(five, d3))), dst + 5 * stride);
    }

    /// <summary>How a transform writes its results: through the caches, or around them.</summary>
    private interface IVectorStore
    {
        static abstract void Store<TVec, V>(TVec value, float* destination)
            where TVec : unmanaged
            where V : struct, IF32Vector<TVec>;
    }

    private readonly struct CachedStore : IVectorStore
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Store<TVec, V>(TVec value, float* destination)
            where TVec : unmanaged
            where V : struct, IF32Vector<TVec> => V.Store(value, destination);
    }

    private readonly struct StreamingStore : IVectorStore
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Store<TVec, V>(TVec value, float* destination)
            where TVec : unmanaged
            where V : struct, IF32Vector<TVec> => V.StoreNonTemporal(value, destination);
    }

    /// <summary>Channel c of the input tile -> v[p * ldv] for the 36 positions p.</summary>
    private static void InputTileScalar(float* image, int height, int width, nint pixelStride, int y0, int x0, int c, float* v, nint ldv)
    {
        float* d = stackalloc float[36];
        for (int i = 0; i < 6; i++)
        {
            for (int j = 0; j < 6; j++)
            {
                int y = y0 + i, x = x0 + j;
                d[i * 6 + j] = (uint)y < (uint)height && (uint)x < (uint)width ? image[(y * width + x) * pixelStride + c] : 0;
            }
        }
        for (int j = 0; j < 6; j++) InputTransform1DScalar(d + j, 6);
        for (int i = 0; i < 6; i++) InputTransform1DScalar(d + i * 6, 1);
        for (int p = 0; p < 36; p++) v[p * ldv] = d[p];
    }

    private static void InputTransform1DScalar(float* d, int stride)
    {
        float d0 = d[0], d1 = d[stride], d2 = d[2 * stride], d3 = d[3 * stride], d4 = d[4 * stride], d5 = d[5 * stride];
        float t0 = d4 - 4 * d2, t1 = d3 - 4 * d1, t2 = d4 - d2, t3 = 2 * (d3 - d1);
        d[0] = 4 * d0 - 5 * d2 + d4;
        d[stride] = t0 + t1;
        d[2 * stride] = t0 - t1;
        d[3 * stride] = t2 + t3;
        d[4 * stride] = t2 - t3;
        d[5 * stride] = 4 * d1 - 5 * d3 + d5;
    }

    /// <summary>
    /// m[p * ldm + c] for the 36 positions -> the 4x4 output tile at (y0, x0) of output [H, W, stride ldo] for
    /// channels [0, channels), adding bias[c] and residual (same pixel layout, stride ldr), then applying
    /// <paramref name="activation"/>; pixels outside the image are skipped (edge tiles).
    /// </summary>
    public static void OutputTile(float* m, nint ldm, int channels, float* bias, float* residual, int ldr,
        float* output, int ldo, int height, int width, int y0, int x0, ConvActivation activation)
    {
        int rowsValid = Math.Min(4, height - y0), colsValid = Math.Min(4, width - x0);
        int c = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            c = OutputChannels<Vector512<float>, F32x16>(m, ldm, channels, bias, residual, ldr, output, ldo, width, y0, x0, rowsValid, colsValid, activation, c);
        }
        c = OutputChannels<Vector256<float>, F32x8>(m, ldm, channels, bias, residual, ldr, output, ldo, width, y0, x0, rowsValid, colsValid, activation, c);
        for (; c < channels; c++)
        {
            OutputTileScalar(m, ldm, c, bias, residual, ldr, output, ldo, width, y0, x0, rowsValid, colsValid, activation);
        }
    }

    /// <summary>
    /// The output transform for whole vectors of channels from <paramref name="c"/>; returns the first channel left.
    /// Columns first, straight from M into a 4x6 stack tile, then each valid row from the tile straight to the
    /// output (see <see cref="InputChannels{TVec, V, TStore}"/>).
    /// </summary>
    [SkipLocalsInit]
    private static int OutputChannels<TVec, V>(float* m, nint ldm, int channels, float* bias, float* residual, int ldr,
        float* output, int ldo, int width, int y0, int x0, int rowsValid, int colsValid, ConvActivation activation, int c)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec>
    {
        TVec* t = stackalloc TVec[24];
        for (; c <= channels - V.Count; c += V.Count)
        {
            for (int j = 0; j < 6; j++)
            {
                // Column j of the 6x6 M tile (positions i * 6 + j) -> rows 0..3 of t's column j.
                float* mj = m + j * ldm + c;
                OutputTransform1D<TVec, V>(V.Load(mj), V.Load(mj + 6 * ldm), V.Load(mj + 12 * ldm), V.Load(mj + 18 * ldm),
                    V.Load(mj + 24 * ldm), V.Load(mj + 30 * ldm), out t[j], out t[6 + j], out t[12 + j], out t[18 + j]);
            }
            TVec b = bias == null ? V.Zero : V.Load(bias + c);
            for (int i = 0; i < rowsValid; i++)
            {
                TVec* row = t + i * 6;
                OutputTransform1D<TVec, V>(row[0], row[1], row[2], row[3], row[4], row[5], out TVec o0, out TVec o1, out TVec o2, out TVec o3);
                nint pixel = (nint)(y0 + i) * width + x0;
                StoreOutput<TVec, V>(o0, b, residual, pixel, ldr, output, ldo, activation, c);
                if (colsValid > 1) StoreOutput<TVec, V>(o1, b, residual, pixel + 1, ldr, output, ldo, activation, c);
                if (colsValid > 2) StoreOutput<TVec, V>(o2, b, residual, pixel + 2, ldr, output, ldo, activation, c);
                if (colsValid > 3) StoreOutput<TVec, V>(o3, b, residual, pixel + 3, ldr, output, ldo, activation, c);
            }
        }
        return c;
    }

    /// <summary>One output pixel's channel vector: activation(value + bias (+ residual)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreOutput<TVec, V>(TVec value, TVec bias, float* residual, nint pixel, int ldr, float* output, int ldo,
        ConvActivation activation, int c)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec>
    {
        value = V.Add(value, bias);
        if (residual != null)
        {
            value = V.Add(value, V.Load(residual + pixel * ldr + c));
        }
        V.Store(activation.Apply<TVec, V>(value, c), output + pixel * ldo + c);
    }

    /// <summary>The 1-D output transform A^T m: 6 values -> 4.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OutputTransform1D<TVec, V>(TVec m0, TVec m1, TVec m2, TVec m3, TVec m4, TVec m5,
        out TVec o0, out TVec o1, out TVec o2, out TVec o3)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec>
    {
        TVec s12 = V.Add(m1, m2), d12 = V.Subtract(m1, m2), s34 = V.Add(m3, m4), d34 = V.Subtract(m3, m4);
        o0 = V.Add(V.Add(m0, s12), s34);
        o1 = V.FusedMultiplyAdd(V.Create(2f), d34, d12);
        o2 = V.FusedMultiplyAdd(V.Create(4f), s34, s12);
        o3 = V.Add(V.FusedMultiplyAdd(V.Create(8f), d34, d12), m5);
    }

    private static void OutputTileScalar(float* m, nint ldm, int c, float* bias, float* residual, int ldr,
        float* output, int ldo, int width, int y0, int x0, int rowsValid, int colsValid, ConvActivation activation)
    {
        float* t = stackalloc float[36];
        for (int p = 0; p < 36; p++) t[p] = m[p * ldm + c];
        for (int j = 0; j < 6; j++) OutputTransform1DScalar(t + j, 6);
        for (int i = 0; i < rowsValid; i++)
        {
            OutputTransform1DScalar(t + i * 6, 1);
            for (int j = 0; j < colsValid; j++)
            {
                nint pixel = (nint)(y0 + i) * width + x0 + j;
                float value = t[i * 6 + j] + (bias == null ? 0 : bias[c]);
                if (residual != null) value += residual[pixel * ldr + c];
                output[pixel * ldo + c] = activation.Apply(value, c);
            }
        }
    }

    private static void OutputTransform1DScalar(float* m, int stride)
    {
        float m0 = m[0], m1 = m[stride], m2 = m[2 * stride], m3 = m[3 * stride], m4 = m[4 * stride], m5 = m[5 * stride];
        float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
        m[0] = m0 + s12 + s34;
        m[stride] = d12 + 2 * d34;
        m[2 * stride] = s12 + 4 * s34;
        m[3 * stride] = d12 + 8 * d34 + m5;
    }
}
