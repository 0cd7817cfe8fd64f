using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sd.Kernels.Numerics;

/// <summary>
/// The error function, for exact (erf-form) GELU. The vector versions use Eigen's odd/even 9/12-degree rational
/// interpolant on |x| &lt; c = erfinv(1 - 2^-23) ~ 3.8325 and return exactly +-1 beyond, where erf is +-1 to the
/// float ulp. The interpolant's own error is 2.1e-8, but evaluated in float32 its Horner and division roundings add
/// up to 4e-7 near 1 (measured), so the vector code widens to double for the rational and rounds once at the end:
/// max abs error 6e-8 over every float (see VectorErfTests), at about twice the float cost, which GELU can afford
/// next to the GEMM that feeds it. .NET has no erf, so the double overload is our own oracle (max abs error ~3e-16):
/// the all-positive series below 2, the Laplace continued fraction for erfc above.
/// </summary>
public static class VectorErf
{
    // erfinv(1 - 2^-23): beyond it the true erf is within half an ulp of 1.
    private const float Clamp = 3.832506856900711f;
    private const double A1 = 1.128379143519084;
    private const double A3 = 0.18520832239976145;
    private const double A5 = 0.050955695062380861;
    private const double A7 = 0.0034082910107109506;
    private const double A9 = 0.00022905065861350646;
    private const double B2 = 0.49746925110067538;
    private const double B4 = 0.11098505178285362;
    private const double B6 = 0.014070470171167667;
    private const double B8 = 0.0010179625278914885;
    private const double B10 = 0.000023547966471313185;
    private const double B12 = -1.1791602954361697e-7;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Erf(Vector512<float> x)
    {
        Vector512<float> signedOne = Vector512<float>.One | (x & Vector512.Create(-0f));
        // One MAXPS and one MINPS (Max/Min are three instructions each); each returns its second operand for NaN.
        x = Vector512.MinNative(Vector512.Create(Clamp), Vector512.MaxNative(Vector512.Create(-Clamp), x));
        (Vector512<double> lower, Vector512<double> upper) = Vector512.Widen(x);
        Vector512<float> r = Vector512.Narrow(Rational(lower), Rational(upper));
        // The interpolant ends at 1 - 1 ulp; saturated lanes get exactly +-1, so GELU is exactly x for large x.
        return Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(Vector512.Abs(x), Vector512.Create(Clamp)), signedOne, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Erf(Vector256<float> x)
    {
        Vector256<float> signedOne = Vector256<float>.One | (x & Vector256.Create(-0f));
        // One MAXPS and one MINPS (Max/Min are three instructions each); each returns its second operand for NaN.
        x = Vector256.MinNative(Vector256.Create(Clamp), Vector256.MaxNative(Vector256.Create(-Clamp), x));
        (Vector256<double> lower, Vector256<double> upper) = Vector256.Widen(x);
        Vector256<float> r = Vector256.Narrow(Rational(lower), Rational(upper));
        // The interpolant ends at 1 - 1 ulp; saturated lanes get exactly +-1, so GELU is exactly x for large x.
        return Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(Vector256.Abs(x), Vector256.Create(Clamp)), signedOne, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> Rational(Vector512<double> x)
    {
        Vector512<double> x2 = x * x;
        Vector512<double> p = Vector512.FusedMultiplyAdd(Vector512.Create(A9), x2, Vector512.Create(A7));
        p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(A5));
        p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(A3));
        p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(A1));
        Vector512<double> q = Vector512.FusedMultiplyAdd(Vector512.Create(B12), x2, Vector512.Create(B10));
        q = Vector512.FusedMultiplyAdd(q, x2, Vector512.Create(B8));
        q = Vector512.FusedMultiplyAdd(q, x2, Vector512.Create(B6));
        q = Vector512.FusedMultiplyAdd(q, x2, Vector512.Create(B4));
        q = Vector512.FusedMultiplyAdd(q, x2, Vector512.Create(B2));
        q = Vector512.FusedMultiplyAdd(q, x2, Vector512<double>.One);
        return x * p / q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Rational(Vector256<double> x)
    {
        Vector256<double> x2 = x * x;
        Vector256<double> p = Vector256.FusedMultiplyAdd(Vector256.Create(A9), x2, Vector256.Create(A7));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(A5));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(A3));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(A1));
        Vector256<double> q = Vector256.FusedMultiplyAdd(Vector256.Create(B12), x2, Vector256.Create(B10));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(B8));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(B6));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(B4));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(B2));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256<double>.One);
        return x * p / q;
    }

    /// <summary>erf rounded from the double-precision evaluation: the scalar reference the vector code is tested against.</summary>
    public static float Erf(float x) => (float)Erf((double)x);

    /// <summary>erf in double precision, max abs error ~3e-16 (checked against mpmath at 40 digits).</summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x))
        {
            return x;
        }
        double a = Math.Abs(x);
        double r = a < 2 ? Series(a) : a < 6 ? 1 - ErfcContinuedFraction(a) : 1; // 1 - erf(6) = 2e-17
        return double.CopySign(r, x);
    }

    /// <summary>
    /// erf(a) = 2/sqrt(pi) a e^(-a^2) sum_n (2a^2)^n / (1*3*...*(2n+1)): every term is positive, so unlike the
    /// Taylor series there is no cancellation; below 2 it needs at most ~32 terms.
    /// </summary>
    private static double Series(double a)
    {
        double twoA2 = 2 * a * a;
        double term = 1;
        double sum = 1;
        for (int n = 1; term > sum * 1e-17; n++)
        {
            term *= twoA2 / (2 * n + 1);
            sum += term;
        }
        return 2 / Math.Sqrt(Math.PI) * a * ExpMinusSquare(a) * sum;
    }

    /// <summary>
    /// erfc(a) = e^(-a^2)/sqrt(pi) / (a + (1/2)/(a + (2/2)/(a + (3/2)/(a + ...)))), evaluated backwards from a
    /// fixed depth: 60 levels leave a truncation error below 1e-18 for a &gt;= 2.
    /// </summary>
    private static double ErfcContinuedFraction(double a)
    {
        double t = a;
        for (int k = 60; k >= 1; k--)
        {
            t = a + k * 0.5 / t;
        }
        return ExpMinusSquare(a) / (Math.Sqrt(Math.PI) * t);
    }

    /// <summary>e^(-a^2) with a^2 split exactly into hi + lo, so the rounding of a^2 does not reach the result.</summary>
    private static double ExpMinusSquare(double a)
    {
        double hi = a * a;
        double lo = Math.FusedMultiplyAdd(a, a, -hi);
        return Math.Exp(-hi) * (1 - lo);
    }
}
