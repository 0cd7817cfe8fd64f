using System.Runtime.Intrinsics;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// Pointwise kernels: an activation (in place or out of place), GEGLU, bias add with a fused activation,
/// elementwise add, and a row-scaled add (a weight per row, for masked image attention). Serial over the range they
/// are given (<see cref="Pointwise"/> tiles them over threads). Vector loops are unrolled by two vectors, independent chains the out-of-order core overlaps through the erf/exp latency,
/// then one masked-vector remainder loop (at most two passes). "dst may equal src" means exactly equal: each vector
/// is loaded before it is stored, but a partially overlapping destination is not supported.
/// </summary>
public static unsafe class ActivationKernels
{
    // ---- activation: dst = act(src) ----

    public static void Apply_Scalar(Activation activation, float* src, float* dst, nint count) =>
        Pick<ScalarWidth>(activation).Apply(src, dst, count);

    public static void Apply_Vector256(Activation activation, float* src, float* dst, nint count) =>
        Pick<Width256>(activation).Apply(src, dst, count);

    public static void Apply_Vector512(Activation activation, float* src, float* dst, nint count) =>
        Pick<Width512>(activation).Apply(src, dst, count);

    // ---- GEGLU: dst[r, j] = src[r, j] * gelu(src[r, F + j]) ----

    /// <summary>
    /// diffusers GEGLU after its projection: each source row is [value (F) | gate (F)], contiguous, row stride 2F.
    /// Output rows are F wide at <paramref name="dstStride"/>; dst may equal src with dstStride 2F (each row's first
    /// half is overwritten, and only after it has been read).
    /// </summary>
    public static void Geglu_Scalar(float* src, float* dst, nint rows, nint features, nint dstStride)
    {
        for (nint r = 0; r < rows; r++)
        {
            float* value = src + r * 2 * features;
            float* gate = value + features;
            float* output = dst + r * dstStride;
            for (nint j = 0; j < features; j++)
            {
                output[j] = value[j] * GeluActivation.Apply(gate[j]);
            }
        }
    }

    public static void Geglu_Vector256(float* src, float* dst, nint rows, nint features, nint dstStride)
    {
        const int W = 8;
        for (nint r = 0; r < rows; r++)
        {
            float* value = src + r * 2 * features;
            float* gate = value + features;
            float* output = dst + r * dstStride;
            nint j = 0;
            for (; j <= features - 2 * W; j += 2 * W)
            {
                Vector256<float> a = Vector256.Load(value + j) * GeluActivation.Apply(Vector256.Load(gate + j));
                Vector256<float> b = Vector256.Load(value + j + W) * GeluActivation.Apply(Vector256.Load(gate + j + W));
                a.Store(output + j);
                b.Store(output + j + W);
            }
            for (; j < features; j += W)
            {
                Vector256<float> mask = MaskedTail.Mask256(features - j);
                Vector256<float> a = MaskedTail.Load(value + j, mask) * GeluActivation.Apply(MaskedTail.Load(gate + j, mask));
                MaskedTail.Store(output + j, mask, a);
            }
        }
    }

    public static void Geglu_Vector512(float* src, float* dst, nint rows, nint features, nint dstStride)
    {
        const int W = 16;
        for (nint r = 0; r < rows; r++)
        {
            float* value = src + r * 2 * features;
            float* gate = value + features;
            float* output = dst + r * dstStride;
            nint j = 0;
            for (; j <= features - 2 * W; j += 2 * W)
            {
                Vector512<float> a = Vector512.Load(value + j) * GeluActivation.Apply(Vector512.Load(gate + j));
                Vector512<float> b = Vector512.Load(value + j + W) * GeluActivation.Apply(Vector512.Load(gate + j + W));
                a.Store(output + j);
                b.Store(output + j + W);
            }
            for (; j < features; j += W)
            {
                Vector512<float> mask = MaskedTail.Mask512(features - j);
                Vector512<float> a = MaskedTail.Load(value + j, mask) * GeluActivation.Apply(MaskedTail.Load(gate + j, mask));
                MaskedTail.Store(output + j, mask, a);
            }
        }
    }

    // ---- bias add: dst[r, c] = act(src[r, c] + bias[c]), dst may equal src ----

    public static void BiasAdd_Scalar(float* src, float* bias, float* dst, nint rows, nint channels, Activation activation) =>
        Pick<ScalarWidth>(activation).BiasAdd(src, bias, dst, rows, channels);

    public static void BiasAdd_Vector256(float* src, float* bias, float* dst, nint rows, nint channels, Activation activation) =>
        Pick<Width256>(activation).BiasAdd(src, bias, dst, rows, channels);

    public static void BiasAdd_Vector512(float* src, float* bias, float* dst, nint rows, nint channels, Activation activation) =>
        Pick<Width512>(activation).BiasAdd(src, bias, dst, rows, channels);

    // ---- add: dst = a + b, dst may equal a or b ----

    public static void Add_Scalar(float* a, float* b, float* dst, nint count)
    {
        for (nint i = 0; i < count; i++)
        {
            dst[i] = a[i] + b[i];
        }
    }

    public static void Add_Vector256(float* a, float* b, float* dst, nint count)
    {
        const int W = 8;
        nint i = 0;
        for (; i <= count - 2 * W; i += 2 * W)
        {
            Vector256<float> x = Vector256.Load(a + i) + Vector256.Load(b + i);
            Vector256<float> y = Vector256.Load(a + i + W) + Vector256.Load(b + i + W);
            x.Store(dst + i);
            y.Store(dst + i + W);
        }
        for (; i < count; i += W)
        {
            Vector256<float> mask = MaskedTail.Mask256(count - i);
            MaskedTail.Store(dst + i, mask, MaskedTail.Load(a + i, mask) + MaskedTail.Load(b + i, mask));
        }
    }

    public static void Add_Vector512(float* a, float* b, float* dst, nint count)
    {
        const int W = 16;
        nint i = 0;
        for (; i <= count - 2 * W; i += 2 * W)
        {
            Vector512<float> x = Vector512.Load(a + i) + Vector512.Load(b + i);
            Vector512<float> y = Vector512.Load(a + i + W) + Vector512.Load(b + i + W);
            x.Store(dst + i);
            y.Store(dst + i + W);
        }
        for (; i < count; i += W)
        {
            Vector512<float> mask = MaskedTail.Mask512(count - i);
            MaskedTail.Store(dst + i, mask, MaskedTail.Load(a + i, mask) + MaskedTail.Load(b + i, mask));
        }
    }

    // ---- row-scaled add: acc[r, :] += scales[r] x src[r, :], fused (one rounding, as the vector FMA) ----

    public static void AddRowScaled_Scalar(float* src, float* scales, float* acc, nint rows, nint channels)
    {
        for (nint r = 0; r < rows; r++)
        {
            float scale = scales[r];
            float* x = src + r * channels, y = acc + r * channels;
            for (nint i = 0; i < channels; i++)
            {
                y[i] = MathF.FusedMultiplyAdd(scale, x[i], y[i]);
            }
        }
    }

    public static void AddRowScaled_Vector256(float* src, float* scales, float* acc, nint rows, nint channels) =>
        AddRowScaled<Vector256<float>, F32x8>(src, scales, acc, rows, channels);

    public static void AddRowScaled_Vector512(float* src, float* scales, float* acc, nint rows, nint channels) =>
        AddRowScaled<Vector512<float>, F32x16>(src, scales, acc, rows, channels);

    private static void AddRowScaled<TVec, V>(float* src, float* scales, float* acc, nint rows, nint channels)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        for (nint r = 0; r < rows; r++)
        {
            TVec scale = V.Create(scales[r]);
            float* x = src + r * channels, y = acc + r * channels;
            nint i = 0;
            for (; i <= channels - 2 * V.Count; i += 2 * V.Count)
            {
                V.Store(V.FusedMultiplyAdd(scale, V.Load(x + i), V.Load(y + i)), y + i);
                V.Store(V.FusedMultiplyAdd(scale, V.Load(x + i + V.Count), V.Load(y + i + V.Count)), y + i + V.Count);
            }
            for (; i < channels; i += V.Count)
            {
                TVec mask = V.Mask(channels - i);
                V.MaskedStore(y + i, mask, V.FusedMultiplyAdd(scale, V.MaskedLoad(x + i, mask), V.MaskedLoad(y + i, mask)));
            }
        }
    }

    /// <summary>The activation-specialized loops of one width, picked once per call.</summary>
    private readonly struct Loops
    {
        public readonly delegate*<float*, float*, nint, void> Apply;
        public readonly delegate*<float*, float*, float*, nint, nint, void> BiasAdd;

        public Loops(delegate*<float*, float*, nint, void> apply, delegate*<float*, float*, float*, nint, nint, void> biasAdd)
        {
            Apply = apply;
            BiasAdd = biasAdd;
        }
    }

    private static Loops Pick<TWidth>(Activation activation)
        where TWidth : IWidth => activation switch
        {
            Activation.None => new(&TWidth.Apply<IdentityActivation>, &TWidth.BiasAdd<IdentityActivation>),
            Activation.Silu => new(&TWidth.Apply<SiluActivation>, &TWidth.BiasAdd<SiluActivation>),
            Activation.Gelu => new(&TWidth.Apply<GeluActivation>, &TWidth.BiasAdd<GeluActivation>),
            Activation.QuickGelu => new(&TWidth.Apply<QuickGeluActivation>, &TWidth.BiasAdd<QuickGeluActivation>),
            _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation"),
        };
}
