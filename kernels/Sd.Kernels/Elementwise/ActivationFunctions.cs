using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Numerics;

namespace Sd.Kernels.Elementwise;

/// <summary>
/// One activation at every width. Kernels are generic over a struct implementing this, so the JIT compiles one
/// specialized loop per activation with the function inlined, and the enum is switched on once per call rather than
/// per element. The float overload is the scalar reference: evaluated in double and rounded once.
/// </summary>
internal interface IActivation
{
    static abstract float Apply(float x);

    static abstract Vector256<float> Apply(Vector256<float> x);

    static abstract Vector512<float> Apply(Vector512<float> x);
}

internal readonly struct IdentityActivation : IActivation
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Apply(float x) => x;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Apply(Vector256<float> x) => x;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Apply(Vector512<float> x) => x;
}

/// <summary>x / (1 + e^-x): for x below -88.7 e^-x is +Inf and the quotient is -0, for large x it is x.</summary>
internal readonly struct SiluActivation : IActivation
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Apply(float x) => (float)(x / (1 + Math.Exp(-(double)x)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Apply(Vector256<float> x) => x / (Vector256<float>.One + VectorMath.Exp(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Apply(Vector512<float> x) => x / (Vector512<float>.One + VectorMath.Exp(-x));
}

/// <summary>h + h erf(x / sqrt 2) with h = x/2: one FMA after the erf.</summary>
internal readonly struct GeluActivation : IActivation
{
    private const float InvSqrt2 = 0.70710678118654752f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Apply(float x) => (float)(0.5 * x * (1 + VectorErf.Erf(x * 0.70710678118654752)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Apply(Vector256<float> x)
    {
        Vector256<float> half = x * Vector256.Create(0.5f);
        return Vector256.FusedMultiplyAdd(half, VectorErf.Erf(x * Vector256.Create(InvSqrt2)), half);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Apply(Vector512<float> x)
    {
        Vector512<float> half = x * Vector512.Create(0.5f);
        return Vector512.FusedMultiplyAdd(half, VectorErf.Erf(x * Vector512.Create(InvSqrt2)), half);
    }
}

/// <summary>x / (1 + e^(-1.702 x)), CLIP's sigmoid approximation of GELU.</summary>
internal readonly struct QuickGeluActivation : IActivation
{
    private const float Alpha = 1.702f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Apply(float x) => (float)(x / (1 + Math.Exp(-(double)Alpha * x)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Apply(Vector256<float> x) =>
        x / (Vector256<float>.One + VectorMath.Exp(x * Vector256.Create(-Alpha)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Apply(Vector512<float> x) =>
        x / (Vector512<float>.One + VectorMath.Exp(x * Vector512.Create(-Alpha)));
}
