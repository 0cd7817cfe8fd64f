using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sd.Kernels.Numerics;

/// <summary>
/// Vectorized transcendental functions for the kernels (softmax, SiLU, GELU). Scalar code uses MathF, which is the
/// reference the vector versions are tested against. exp: Cephes-style range reduction x = n ln2 + r with a
/// two-constant ln2 (Cody-Waite), a degree-6 polynomial for e^r on |r| <= ln2/2, and 2^n built in the exponent
/// field; relative error under 2e-7 over the whole float range, 0 below -87.3 (no subnormal results) and +Inf above ln(float.MaxValue).
/// </summary>
public static class VectorMath
{
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2Hi = 0.693359375f;
    private const float Ln2Lo = -2.12194440e-4f;
    private const float ExpMax = 88.72283f; // ln(float.MaxValue)
    private const float ExpMin = -87.3365447505531f;
    private const float P0 = 1.9875691500e-4f;
    private const float P1 = 1.3981999507e-3f;
    private const float P2 = 8.3334519073e-3f;
    private const float P3 = 4.1665795894e-2f;
    private const float P4 = 1.6666665459e-1f;
    private const float P5 = 5.0000001201e-1f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        Vector512<float> overflow = Vector512.GreaterThan(x, Vector512.Create(ExpMax));
        Vector512<float> underflow = Vector512.LessThan(x, Vector512.Create(ExpMin));
        // One MAXPS and one MINPS (Max/Min are three instructions each); each returns its second operand for NaN.
        x = Vector512.MinNative(Vector512.Create(ExpMax), Vector512.MaxNative(Vector512.Create(ExpMin), x));
        Vector512<float> n = Vector512.Round(x * Vector512.Create(Log2E));
        Vector512<float> r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        Vector512<float> p = Vector512.Create(P0);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P5));
        p = Vector512.FusedMultiplyAdd(p, r * r, r + Vector512<float>.One);
        // 2^n: n is in [-126, 128] after the clamp; split it so both factors are normal floats.
        // n is integral and in range: one VCVTTPS2DQ, without ConvertToInt32's saturation fix-ups.
        Vector512<int> ni = Vector512.ConvertToInt32Native(n);
        Vector512<int> half = ni >> 1;
        Vector512<float> scale1 = ((half + Vector512.Create(127)) << 23).AsSingle();
        Vector512<float> scale2 = ((ni - half + Vector512.Create(127)) << 23).AsSingle();
        Vector512<float> result = p * scale1 * scale2;
        result = Vector512.ConditionalSelect(overflow, Vector512.Create(float.PositiveInfinity), result);
        return Vector512.AndNot(result, underflow);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        Vector256<float> overflow = Vector256.GreaterThan(x, Vector256.Create(ExpMax));
        Vector256<float> underflow = Vector256.LessThan(x, Vector256.Create(ExpMin));
        // One MAXPS and one MINPS (Max/Min are three instructions each); each returns its second operand for NaN.
        x = Vector256.MinNative(Vector256.Create(ExpMax), Vector256.MaxNative(Vector256.Create(ExpMin), x));
        Vector256<float> n = Vector256.Round(x * Vector256.Create(Log2E));
        Vector256<float> r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Hi), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Lo), r);
        Vector256<float> p = Vector256.Create(P0);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P5));
        p = Vector256.FusedMultiplyAdd(p, r * r, r + Vector256<float>.One);
        Vector256<int> ni = Vector256.ConvertToInt32Native(n);
        Vector256<int> half = ni >> 1;
        Vector256<float> scale1 = ((half + Vector256.Create(127)) << 23).AsSingle();
        Vector256<float> scale2 = ((ni - half + Vector256.Create(127)) << 23).AsSingle();
        Vector256<float> result = p * scale1 * scale2;
        result = Vector256.ConditionalSelect(overflow, Vector256.Create(float.PositiveInfinity), result);
        return Vector256.AndNot(result, underflow);
    }
}
