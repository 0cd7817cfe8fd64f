using System.Runtime.Intrinsics;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// The activation-generic loops of <see cref="ActivationKernels"/> at one vector width. Generic over the activation
/// (a struct), so each (width, activation) pair is its own JIT-specialized loop with the function inlined.
/// </summary>
internal unsafe interface IWidth
{
    static abstract void Apply<TAct>(float* src, float* dst, nint count)
        where TAct : IActivation;

    static abstract void BiasAdd<TAct>(float* src, float* bias, float* dst, nint rows, nint channels)
        where TAct : IActivation;
}

internal readonly unsafe struct ScalarWidth : IWidth
{
    public static void Apply<TAct>(float* src, float* dst, nint count)
        where TAct : IActivation
    {
        for (nint i = 0; i < count; i++)
        {
            dst[i] = TAct.Apply(src[i]);
        }
    }

    public static void BiasAdd<TAct>(float* src, float* bias, float* dst, nint rows, nint channels)
        where TAct : IActivation
    {
        for (nint r = 0; r < rows; r++)
        {
            float* s = src + r * channels;
            float* d = dst + r * channels;
            for (nint c = 0; c < channels; c++)
            {
                d[c] = TAct.Apply(s[c] + bias[c]);
            }
        }
    }
}

internal readonly unsafe struct Width256 : IWidth
{
    private const int W = 8;

    public static void Apply<TAct>(float* src, float* dst, nint count)
        where TAct : IActivation
    {
        nint i = 0;
        for (; i <= count - 2 * W; i += 2 * W)
        {
            Vector256<float> a = TAct.Apply(Vector256.Load(src + i));
            Vector256<float> b = TAct.Apply(Vector256.Load(src + i + W));
            a.Store(dst + i);
            b.Store(dst + i + W);
        }
        for (; i < count; i += W)
        {
            Vector256<float> mask = MaskedTail.Mask256(count - i);
            MaskedTail.Store(dst + i, mask, TAct.Apply(MaskedTail.Load(src + i, mask)));
        }
    }

    public static void BiasAdd<TAct>(float* src, float* bias, float* dst, nint rows, nint channels)
        where TAct : IActivation
    {
        for (nint r = 0; r < rows; r++)
        {
            float* s = src + r * channels;
            float* d = dst + r * channels;
            nint c = 0;
            for (; c <= channels - 2 * W; c += 2 * W)
            {
                Vector256<float> a = TAct.Apply(Vector256.Load(s + c) + Vector256.Load(bias + c));
                Vector256<float> b = TAct.Apply(Vector256.Load(s + c + W) + Vector256.Load(bias + c + W));
                a.Store(d + c);
                b.Store(d + c + W);
            }
            for (; c < channels; c += W)
            {
                Vector256<float> mask = MaskedTail.Mask256(channels - c);
                Vector256<float> x = MaskedTail.Load(s + c, mask) + MaskedTail.Load(bias + c, mask);
                MaskedTail.Store(d + c, mask, TAct.Apply(x));
            }
        }
    }
}

internal readonly unsafe struct Width512 : IWidth
{
    private const int W = 16;

    public static void Apply<TAct>(float* src, float* dst, nint count)
        where TAct : IActivation
    {
        nint i = 0;
        for (; i <= count - 2 * W; i += 2 * W)
        {
            Vector512<float> a = TAct.Apply(Vector512.Load(src + i));
            Vector512<float> b = TAct.Apply(Vector512.Load(src + i + W));
            a.Store(dst + i);
            b.Store(dst + i + W);
        }
        for (; i < count; i += W)
        {
            Vector512<float> mask = MaskedTail.Mask512(count - i);
            MaskedTail.Store(dst + i, mask, TAct.Apply(MaskedTail.Load(src + i, mask)));
        }
    }

    public static void BiasAdd<TAct>(float* src, float* bias, float* dst, nint rows, nint channels)
        where TAct : IActivation
    {
        for (nint r = 0; r < rows; r++)
        {
            float* s = src + r * channels;
            float* d = dst + r * channels;
            nint c = 0;
            for (; c <= channels - 2 * W; c += 2 * W)
            {
                Vector512<float> a = TAct.Apply(Vector512.Load(s + c) + Vector512.Load(bias + c));
                Vector512<float> b = TAct.Apply(Vector512.Load(s + c + W) + Vector512.Load(bias + c + W));
                a.Store(d + c);
                b.Store(d + c + W);
            }
            for (; c < channels; c += W)
            {
                Vector512<float> mask = MaskedTail.Mask512(channels - c);
                Vector512<float> x = MaskedTail.Load(s + c, mask) + MaskedTail.Load(bias + c, mask);
                MaskedTail.Store(d + c, mask, TAct.Apply(x));
            }
        }
    }
}
