namespace Sd.Engine.Schedulers;

/// <summary>
/// The weights of UniPC's B(h) updates, as diffusers' multistep_uni_p/c_bh_update and A1111's uni_pc.py
/// multistep_uni_pc_bh_update compute them in float32: b_k = h_phi_k k! / B(h) for k = 1..order, from h_phi_1 =
/// expm1(hh) through h_phi_(k+1) = h_phi_k / hh - 1 / (k+1)! (h_phi_1 / hh - 1 first), and the rhos that solve
/// R rho = b, R's row i holding the step ratios r_k to the power i (the last ratio 1).
/// </summary>
internal static class UniPcWeights
{
    /// <summary>The largest system solved: order 3's corrector.</summary>
    private const int MaxOrder = 3;

    /// <summary>
    /// Writes b_1..b_order into <paramref name="b"/> (its length is the order) for hh (-h when predicting x0),
    /// h_phi_1 = expm1(hh) and <paramref name="bh"/>, B(h): hh for bh1, h_phi_1 for bh2.
    /// </summary>
    public static void RightHandSide(float hh, float hPhi1, float bh, Span<float> b)
    {
        float hPhiK = hPhi1 / hh - 1f;
        int factorial = 1;
        for (int i = 1; i <= b.Length; i++)
        {
            b[i - 1] = hPhiK * factorial / bh;
            factorial *= i + 1;
            hPhiK = hPhiK / hh - (float)(1.0 / factorial); // torch takes the Python float as float32
        }
    }

    /// <summary>
    /// Solves R rho = <paramref name="b"/> in place for the first b.Length ratios of <paramref name="rks"/>, as
    /// torch.linalg.solve does in float32 on the CPU (PyTorch 1.13): LAPACK's LU with partial pivoting (the first
    /// largest pivot, the column scaled by its reciprocal), then the triangular solves. A contiguous R (the corrector's
    /// whole matrix) is factored transposed, torch's trick for row-major input, and solved with trans 'T'; a slice
    /// (the order-3 predictor's R[:-1, :-1]) is copied and factored as it is.
    /// </summary>
    public static void Solve(ReadOnlySpan<float> rks, Span<float> b, bool contiguous)
    {
        int n = b.Length;
        Span<float> m = stackalloc float[MaxOrder * MaxOrder];
        Span<int> pivots = stackalloc int[MaxOrder];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                // R[i][j] = rks[j] ** i (torch.pow: 1, the value, its square); m is R or its transpose, row-major.
                float r = i == 0 ? 1f : i == 1 ? rks[j] : rks[j] * rks[j];
                m[contiguous ? j * n + i : i * n + j] = r;
            }
        }
        Factor(m, n, pivots);
        if (contiguous)
        {
            // (LU)^T x = b: U^T y = b forward, L^T z = y backward, then the row swaps undone in reverse.
            for (int i = 0; i < n; i++)
            {
                float t = b[i];
                for (int k = 0; k < i; k++)
                {
                    t -= m[k * n + i] * b[k];
                }
                b[i] = t / m[i * n + i];
            }
            for (int i = n - 1; i >= 0; i--)
            {
                float t = b[i];
                for (int k = i + 1; k < n; k++)
                {
                    t -= m[k * n + i] * b[k];
                }
                b[i] = t;
            }
            for (int j = n - 1; j >= 0; j--)
            {
                (b[j], b[pivots[j]]) = (b[pivots[j]], b[j]);
            }
            return;
        }
        // L U x = P b: the swaps, then L y = Pb and U x = y column by column (reference BLAS strsm's order).
        for (int j = 0; j < n; j++)
        {
            (b[j], b[pivots[j]]) = (b[pivots[j]], b[j]);
        }
        for (int k = 0; k < n; k++)
        {
            for (int i = k + 1; i < n; i++)
            {
                b[i] -= b[k] * m[i * n + k];
            }
        }
        for (int k = n - 1; k >= 0; k--)
        {
            b[k] /= m[k * n + k];
            for (int i = 0; i < k; i++)
            {
                b[i] -= b[k] * m[i * n + k];
            }
        }
    }

    /// <summary>LAPACK getrf on the n x n row-major <paramref name="m"/>: L's multipliers below the diagonal, U on and above.</summary>
    private static void Factor(Span<float> m, int n, Span<int> pivots)
    {
        for (int j = 0; j < n; j++)
        {
            int p = j;
            for (int i = j + 1; i < n; i++)
            {
                if (Math.Abs(m[i * n + j]) > Math.Abs(m[p * n + j]))
                {
                    p = i;
                }
            }
            pivots[j] = p;
            if (p != j)
            {
                for (int k = 0; k < n; k++)
                {
                    (m[j * n + k], m[p * n + k]) = (m[p * n + k], m[j * n + k]);
                }
            }
            float reciprocal = 1f / m[j * n + j];
            for (int i = j + 1; i < n; i++)
            {
                m[i * n + j] *= reciprocal;
                for (int k = j + 1; k < n; k++)
                {
                    m[i * n + k] -= m[i * n + j] * m[j * n + k];
                }
            }
        }
    }
}
