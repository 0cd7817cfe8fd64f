namespace Sd.Engine.Schedulers;

/// <summary>
/// The beta ramp ("Beta Sampling is All You Need", Lee et al. 2024): sigma_min + q x (sigma_max - sigma_min) for
/// q the quantiles of a Beta(0.6, 0.6) distribution at 1 - linspace(0, 1, steps), so the levels crowd at both ends.
/// Reference: diffusers _convert_to_beta (use_beta_sigmas; alpha = beta = 0.6) and A1111's beta_scheduler
/// (sd_schedulers.py, its default beta_dist_alpha/beta), both scipy.stats.beta.ppf.
/// </summary>
public static class BetaSigmas
{
    public const double Alpha = 0.6, Beta = 0.6;

    /// <summary><paramref name="steps"/> levels from sigma_max down to sigma_min.</summary>
    public static double[] Of(double sigmaMin, double sigmaMax, int steps)
    {
        double[] sigmas = Scheduler.NpLinspace(0, 1, steps);
        for (int i = 0; i < steps; i++)
        {
            sigmas[i] = sigmaMin + Quantile(1 - sigmas[i], Alpha, Beta) * (sigmaMax - sigmaMin);
        }
        return sigmas;
    }

    /// <summary>
    /// The x in [0, 1] with I_x(a, b) = p (the Beta(a, b) distribution's quantile). Where x is above 1/2 (p above
    /// I_1/2) it is 1 - y for I_y(b, a) = 1 - p, so the tail where I_x is flat is searched with 1 - p's own precision.
    /// Accurate to about 1e-14 for shapes near 1 (the ramp's 0.6); log Gamma's cancellation costs digits for a shape
    /// far below the other (about 1e-11 at 0.1 against 100).
    /// </summary>
    internal static double Quantile(double p, double a, double b)
    {
        if (!(p >= 0 && p <= 1) || !(a > 0) || !(b > 0) || double.IsInfinity(a) || double.IsInfinity(b))
        {
            throw new ArgumentOutOfRangeException(nameof(p), $"the beta quantile needs p in [0, 1] and finite a, b > 0; got p {p}, a {a}, b {b}");
        }
        return p > RegularizedIncompleteBeta(0.5, a, b) ? 1 - LowerQuantile(1 - p, b, a) : LowerQuantile(p, a, b);
    }

    /// <summary>
    /// The quantile at most 1/2, by bisection: I_x rises with x, and halving until the bounds meet fixes x to double
    /// precision (relative, for the tiny x of a tiny p) wherever I_x is computed to it.
    /// </summary>
    private static double LowerQuantile(double p, double a, double b)
    {
        if (p == 0)
        {
            return 0;
        }
        double low = 0, high = 1;
        for (int i = 0; i < 1100 && high - low > 0; i++)
        {
            double middle = low + (high - low) / 2;
            if (middle <= low || middle >= high)
            {
                break;
            }
            if (RegularizedIncompleteBeta(middle, a, b) < p)
            {
                low = middle;
            }
            else
            {
                high = middle;
            }
        }
        return low + (high - low) / 2;
    }

    /// <summary>
    /// I_x(a, b), the Beta(a, b) distribution's CDF: x^a (1 - x)^b / (a B(a, b)) times a continued fraction, taken on
    /// the side of the mean where it converges fast (Numerical Recipes 6.4, modified Lentz).
    /// </summary>
    internal static double RegularizedIncompleteBeta(double x, double a, double b)
    {
        if (x <= 0)
        {
            return 0;
        }
        if (x >= 1)
        {
            return 1;
        }
        double logFront = LogGamma(a + b) - LogGamma(a) - LogGamma(b) + a * Math.Log(x) + b * Math.Log(1 - x);
        if (double.IsNaN(logFront) || double.IsPositiveInfinity(logFront))
        {
            throw new ArgumentOutOfRangeException(nameof(a), $"the incomplete beta function of shapes {a} and {b} overflows double precision");
        }
        return x < (a + 1) / (a + b + 2)
            ? Math.Exp(logFront) * ContinuedFraction(x, a, b) / a
            : 1 - Math.Exp(logFront) * ContinuedFraction(1 - x, b, a) / b;
    }

    private static double ContinuedFraction(double x, double a, double b)
    {
        const double Tiny = 1e-300, Epsilon = 1e-16;
        double c = 1, d = 1 - (a + b) * x / (a + 1);
        d = 1 / (Math.Abs(d) < Tiny ? Tiny : d);
        double h = d;
        for (int m = 1; m <= 10_000; m++)
        {
            // The even step, then the odd one, of the fraction's terms.
            double even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
            d = 1 + even * d;
            c = 1 + even / c;
            d = 1 / (Math.Abs(d) < Tiny ? Tiny : d);
            c = Math.Abs(c) < Tiny ? Tiny : c;
            h *= d * c;
            double odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
            d = 1 + odd * d;
            c = 1 + odd / c;
            d = 1 / (Math.Abs(d) < Tiny ? Tiny : d);
            c = Math.Abs(c) < Tiny ? Tiny : c;
            double step = d * c;
            h *= step;
            if (Math.Abs(step - 1) < Epsilon)
            {
                break;
            }
        }
        return h;
    }

    /// <summary>ln Gamma(x) for x > 0: Lanczos's approximation (g = 7, 9 terms, about 1e-15), reflected below 1/2.</summary>
    private static double LogGamma(double x)
    {
        if (x < 0.5)
        {
            return Math.Log(Math.PI / Math.Sin(Math.PI * x)) - LogGamma(1 - x);
        }
        ReadOnlySpan<double> coefficients =
        [
            0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
            12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
        ];
        x -= 1;
        double sum = coefficients[0];
        for (int i = 1; i < coefficients.Length; i++)
        {
            sum += coefficients[i] / (x + i);
        }
        double t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }
}
