namespace Sd.Engine.Rng;

/// <summary>
/// The single-precision Cephes log and sincos of <c>avx_mathfun.h</c>, which torch's AVX2 <c>normal_fill_16</c>
/// kernel uses, written scalar with every fused multiply-add of the vector code kept as
/// <see cref="MathF.FusedMultiplyAdd"/> (one rounding). Dropping the fusing changes 1–2 ulp in about 1% of values.
/// </summary>
internal static class CephesFloat
{
    private const float SqrtHalf = 0.707106781186547524f;

    /// <summary>Natural log for x in (0, 1] (the range Box–Muller feeds it; no special-value handling).</summary>
    public static float Log(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        float e = (int)(bits >> 23) - 126;
        float m = BitConverter.UInt32BitsToSingle((bits & 0x807FFFFFu) | 0x3F000000u);
        if (m < SqrtHalf)
        {
            e -= 1f;
            m = (m - 1f) + m;
        }
        else
        {
            m -= 1f;
        }

        float z = m * m;
        float y = 7.0376836292e-2f;
        y = MathF.FusedMultiplyAdd(y, m, -1.1514610310e-1f);
        y = MathF.FusedMultiplyAdd(y, m, 1.1676998740e-1f);
        y = MathF.FusedMultiplyAdd(y, m, -1.2420140846e-1f);
        y = MathF.FusedMultiplyAdd(y, m, 1.4249322787e-1f);
        y = MathF.FusedMultiplyAdd(y, m, -1.6668057665e-1f);
        y = MathF.FusedMultiplyAdd(y, m, 2.0000714765e-1f);
        y = MathF.FusedMultiplyAdd(y, m, -2.4999993993e-1f);
        y = MathF.FusedMultiplyAdd(y, m, 3.3333331174e-1f);
        y *= m;
        y = MathF.FusedMultiplyAdd(y, z, e * -2.12194440e-4f);
        y -= z * 0.5f;
        return MathF.FusedMultiplyAdd(e, 0.693359375f, m + y);
    }

    /// <summary>Sine and cosine for x in [0, 2π).</summary>
    public static void SinCos(float x, out float sin, out float cos)
    {
        int j = (int)(x * 1.27323954473516f);
        j = (j + 1) & ~1;
        float y = j;
        x = MathF.FusedMultiplyAdd(y, -0.78515625f, x);
        x = MathF.FusedMultiplyAdd(y, -2.4187564849853515625e-4f, x);
        x = MathF.FusedMultiplyAdd(y, -3.77489497744594108e-8f, x);
        float z = x * x;

        float c = MathF.FusedMultiplyAdd(
            MathF.FusedMultiplyAdd(2.443315711809948e-5f, z, -1.388731625493765e-3f), z, 4.166664568298827e-2f);
        c *= z;
        c = MathF.FusedMultiplyAdd(c, z, -(z * 0.5f));
        c += 1f;

        float s = MathF.FusedMultiplyAdd(
            MathF.FusedMultiplyAdd(-1.9515295891e-4f, z, 8.3321608736e-3f), z, -1.6666654611e-1f);
        s *= z;
        s = MathF.FusedMultiplyAdd(s, x, x);

        if ((j & 2) == 0)
        {
            sin = s;
            cos = c;
        }
        else
        {
            sin = c;
            cos = s;
        }
        if ((j & 4) != 0)
        {
            sin = -sin;
        }
        if (((j - 2) & 4) == 0)
        {
            cos = -cos;
        }
    }
}
