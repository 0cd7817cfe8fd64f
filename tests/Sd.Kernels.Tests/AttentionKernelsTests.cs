using System.Runtime.Intrinsics;
using Sd.Kernels.Attention;

namespace Sd.Kernels.Tests;

/// <summary>
/// Every attention variant against the scalar reference (relative L2 error &lt;= 1e-5), and the reference against a
/// double-precision evaluation. Shapes cover the SD head dims, head dims that are not a multiple of the channel
/// unroll, key counts on both sides of the flash tile, query counts that leave partial blocks, the causal mask,
/// strided (fused QKV) rows, and logits large enough that a softmax without max subtraction overflows.
/// </summary>
public unsafe class AttentionKernelsTests
{
    private const double Tolerance = 1e-5;
    private const float Sentinel = 12345f;

    public static TheoryData<string> Variants()
    {
        var data = new TheoryData<string> { "run" };
        if (Vector256.IsHardwareAccelerated)
        {
            data.Add("flash256");
            data.Add("partial256");
            data.Add("naive256");
        }
        if (Vector512.IsHardwareAccelerated)
        {
            data.Add("flash512");
            data.Add("partial512");
            data.Add("naive512");
        }
        return data;
    }

    /// <summary>(batch, heads, query length, key length, head dim, causal).</summary>
    private static readonly (int B, int H, int Lq, int Lk, int D, bool Causal)[] Shapes =
    [
        (1, 1, 1, 1, 8, false),
        (2, 3, 17, 33, 40, false),
        (1, 8, 64, 77, 40, false),
        (2, 2, 257, 100, 80, false),
        (1, 1, 70, 70, 160, false),
        (1, 4, 77, 77, 64, true),
        (1, 2, 100, 300, 64, false),
        (2, 3, 300, 300, 32, true),  // causal across several flash tiles
        (1, 2, 70, 40, 24, true),    // causal with more queries than keys
        (1, 1, 40, 50, 12, false),   // d = 8 + 4: the channel remainder path
        (2, 1, 33, 20, 5, false),    // d below every unroll
        (1, 2, 45, 130, 128, false),
        (1, 1, 20, 1100, 16, false), // past PartialSoftmaxMaxKeys: Run takes the flash path
        (1, 2, 1030, 70, 24, false), // 1024 queries or more: K and V copied into contiguous head planes first
        (2, 2, 1024, 1024, 8, true), // the same, causal
    ];

    public static TheoryData<string, int> VariantsAndShapes()
    {
        var data = new TheoryData<string, int>();
        foreach (string variant in Variants())
        {
            for (int shape = 0; shape < Shapes.Length; shape++)
            {
                data.Add(variant, shape);
            }
        }
        return data;
    }

    public static TheoryData<int> ShapeIndices()
    {
        var data = new TheoryData<int>();
        for (int shape = 0; shape < Shapes.Length; shape++)
        {
            data.Add(shape);
        }
        return data;
    }

    private static delegate*<in AttentionProblem, void> Kernel(string variant) => variant switch
    {
        "flash512" => &AttentionKernels.FlashAttention_Vector512,
        "partial512" => &AttentionKernels.PartialSoftmaxAttention_Vector512,
        "naive512" => &AttentionKernels.NaiveAttention_Vector512,
        "flash256" => &AttentionKernels.FlashAttention_Vector256,
        "partial256" => &AttentionKernels.PartialSoftmaxAttention_Vector256,
        "naive256" => &AttentionKernels.NaiveAttention_Vector256,
        "run" => &AttentionKernels.Run,
        _ => &AttentionKernels.Attention_Scalar,
    };

    /// <summary>
    /// Random Q, K, V ([B, L, H*d] with row strides wider than H*d, the extra columns NaN so a kernel reading
    /// outside its head shows up), and an output buffer whose extra columns hold a sentinel.
    /// </summary>
    private sealed class Case
    {
        public readonly int B, H, Lq, Lk, D, Ldq, Ldk, Ldv, Ldo;
        public readonly bool Causal;
        public readonly float[] Q, K, V;

        public Case((int B, int H, int Lq, int Lk, int D, bool Causal) s, int seed, float logitRange = 0)
        {
            (B, H, Lq, Lk, D, Causal) = s;
            int width = H * D;
            (Ldq, Ldk, Ldv, Ldo) = (width + 3, width + 5, width + 1, width + 2);
            var random = new Random(seed);
            Q = Fill(random, B * Lq, Ldq, width);
            K = Fill(random, B * Lk, Ldk, width);
            V = Fill(random, B * Lk, Ldv, width);
            if (logitRange > 0)
            {
                // Stretch K so the largest |scale * q.k| of the case is exactly logitRange.
                double largest = 0;
                ForEachScore((b, h, i, j, score) => largest = Math.Max(largest, Math.Abs(score)));
                float stretch = (float)(logitRange / largest);
                for (int n = 0; n < K.Length; n++)
                {
                    K[n] *= stretch;
                }
            }
        }

        private static float[] Fill(Random random, int rows, int stride, int width)
        {
            var data = new float[rows * stride];
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < stride; c++)
                {
                    data[r * stride + c] = c < width ? random.NextSingle() * 2 - 1 : float.NaN;
                }
            }
            return data;
        }

        private void ForEachScore(Action<int, int, int, int, double> visit)
        {
            double scale = 1 / Math.Sqrt(D);
            for (int b = 0; b < B; b++)
            {
                for (int h = 0; h < H; h++)
                {
                    for (int i = 0; i < Lq; i++)
                    {
                        for (int j = 0; j < Lk; j++)
                        {
                            double dot = 0;
                            for (int c = 0; c < D; c++)
                            {
                                dot += (double)Q[(b * Lq + i) * Ldq + h * D + c] * K[(b * Lk + j) * Ldk + h * D + c];
                            }
                            visit(b, h, i, j, dot * scale);
                        }
                    }
                }
            }
        }

        public float[] Run(delegate*<in AttentionProblem, void> kernel)
        {
            var o = new float[B * Lq * Ldo];
            Array.Fill(o, Sentinel);
            fixed (float* q = Q)
            fixed (float* k = K)
            fixed (float* v = V)
            fixed (float* po = o)
            {
                var problem = new AttentionProblem(q, Ldq, k, Ldk, v, Ldv, po, Ldo, B, H, Lq, Lk, D, Causal);
                kernel(problem);
            }
            for (int r = 0; r < B * Lq; r++)
            {
                for (int c = H * D; c < Ldo; c++)
                {
                    Assert.True(o[r * Ldo + c] == Sentinel, $"output row {r} column {c} (stride padding) was written");
                }
            }
            return o;
        }

        /// <summary>Naive attention in double (no max subtraction needed in double up to |logit| ~ 700).</summary>
        public double[] RunDouble()
        {
            var o = new double[B * Lq * Ldo];
            var weights = new double[B, H, Lq, Lk];
            ForEachScore((b, h, i, j, score) => weights[b, h, i, j] = Causal && j > i ? 0 : Math.Exp(score));
            for (int b = 0; b < B; b++)
            {
                for (int h = 0; h < H; h++)
                {
                    for (int i = 0; i < Lq; i++)
                    {
                        double sum = 0;
                        for (int j = 0; j < Lk; j++)
                        {
                            sum += weights[b, h, i, j];
                        }
                        for (int c = 0; c < D; c++)
                        {
                            double acc = 0;
                            for (int j = 0; j < Lk; j++)
                            {
                                acc += weights[b, h, i, j] * V[(b * Lk + j) * Ldv + h * D + c];
                            }
                            o[(b * Lq + i) * Ldo + h * D + c] = acc / sum;
                        }
                    }
                }
            }
            return o;
        }

        /// <summary>||actual - expected|| / ||expected|| over the heads' channels.</summary>
        public double RelativeError(float[] actual, IReadOnlyList<double> expected)
        {
            double diff = 0, norm = 0;
            for (int r = 0; r < B * Lq; r++)
            {
                for (int c = 0; c < H * D; c++)
                {
                    double e = expected[r * Ldo + c];
                    double a = actual[r * Ldo + c];
                    diff += (a - e) * (a - e);
                    norm += e * e;
                }
            }
            return double.IsNaN(diff) ? double.PositiveInfinity : Math.Sqrt(diff / norm);
        }
    }

    private static double[] Widen(float[] values) => Array.ConvertAll(values, v => (double)v);

    [Theory]
    [MemberData(nameof(VariantsAndShapes))]
    public void Variant_matches_the_scalar_reference(string variant, int shape)
    {
        var c = new Case(Shapes[shape], seed: 100 + shape);
        double[] expected = Widen(c.Run(&AttentionKernels.Attention_Scalar));
        double error = c.RelativeError(c.Run(Kernel(variant)), expected);
        Assert.True(error <= Tolerance, $"{variant} {Shapes[shape]}: relative L2 error {error:E2}");
    }

    [Theory]
    [MemberData(nameof(ShapeIndices))]
    public void Scalar_reference_matches_double_precision(int shape)
    {
        var c = new Case(Shapes[shape], seed: 200 + shape);
        double error = c.RelativeError(c.Run(&AttentionKernels.Attention_Scalar), c.RunDouble());
        Assert.True(error <= Tolerance, $"{Shapes[shape]}: relative L2 error {error:E2}");
    }

    /// <summary>
    /// Logits of +-50 (the brief's range) and +-300 (exp overflows float without the max subtraction) against the
    /// double evaluation; the scalar reference included.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    [InlineData("scalar")]
    public void Large_logits_stay_accurate(string variant)
    {
        foreach (float range in new[] { 50f, 300f })
        {
            foreach (int shape in new[] { 2, 5, 6 })
            {
                var c = new Case(Shapes[shape], seed: 300 + shape, logitRange: range);
                double error = c.RelativeError(c.Run(Kernel(variant)), c.RunDouble());
                Assert.True(
                    error <= Tolerance, $"{variant} {Shapes[shape]} logits +-{range}: relative L2 error {error:E2}");
            }
        }
    }

    /// <summary>
    /// The vector variants' own exponential, probed through the kernel: with d = 1, keys k = (0, 1) and values
    /// v = (0, 1), query q sees the logits (0, q) and its output is e^q / (1 + e^q), exactly known. Sweeping q over
    /// [-80, 0] covers the whole useful range of the softmax weights. The allowance is the polynomial's error plus
    /// what rounding the logit itself costs any float softmax (|q| ulps of q, times ln 2 in base-2 units).
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    [InlineData("scalar")]
    public void Softmax_weights_follow_exp_over_the_whole_range(string variant)
    {
        const int count = 4001;
        var q = new float[count];
        var o = new float[count];
        for (int i = 0; i < count; i++)
        {
            q[i] = -80f * i / (count - 1);
        }
        float[] k = [0, 1];
        float[] v = [0, 1];
        fixed (float* pq = q)
        fixed (float* pk = k)
        fixed (float* pv = v)
        fixed (float* po = o)
        {
            Kernel(variant)(new AttentionProblem(pq, 1, pk, 1, pv, 1, po, 1, 1, 1, count, 2, 1));
        }
        for (int i = 0; i < count; i++)
        {
            double e = Math.Exp(q[i]);
            double expected = e / (1 + e);
            double error = Math.Abs(o[i] - expected) / expected;
            Assert.True(
                error <= 3e-7 + 1e-7 * -q[i], $"{variant}: logit {q[i]}: weight {o[i]:E8}, expected {expected:E8}");
        }
    }

    /// <summary>
    /// Lazy rescaling: a row's first tile is exponentiated against the max of its first 8 keys, each later tile
    /// against the running offset, unless its scores pass that by more than the limit (32 base-2 units, 22 nats), and
    /// then the tile is redone exactly. With d = 1, keys k (logits q k) of 0 for keys 0-7, 20 for the rest of the
    /// first 256-key tile, then 28, 70 and 1 by tile, and queries q in [-1.5, 1.5]: q = 0.5 takes the first two tiles
    /// lazily and redoes the third; q = 1 redoes the second and third; q = 1.5 redoes the first, takes the second
    /// (12 nats above the first tile's 30) and redoes the third, which taken as it is would overflow float. Negative q
    /// never redoes. Against a double-precision softmax.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void Tiles_above_the_running_max_match_double_precision(string variant)
    {
        const int queries = 61, keys = 900;
        float[] steps = [20, 28, 70, 1];
        var q = new float[queries];
        var k = new float[keys];
        var v = new float[keys];
        var o = new float[queries];
        var random = new Random(11);
        for (int i = 0; i < queries; i++)
        {
            q[i] = -1.5f + 3f * i / (queries - 1);
        }
        for (int j = 0; j < keys; j++)
        {
            k[j] = j < 8 ? 0 : steps[j / 256];
            v[j] = random.NextSingle() * 2 - 1;
        }
        fixed (float* pq = q)
        fixed (float* pk = k)
        fixed (float* pv = v)
        fixed (float* po = o)
        {
            Kernel(variant)(new AttentionProblem(pq, 1, pk, 1, pv, 1, po, 1, 1, 1, queries, keys, 1));
        }
        for (int i = 0; i < queries; i++)
        {
            double max = double.NegativeInfinity, sum = 0, weighted = 0;
            for (int j = 0; j < keys; j++)
            {
                max = Math.Max(max, (double)q[i] * k[j]);
            }
            for (int j = 0; j < keys; j++)
            {
                double w = Math.Exp((double)q[i] * k[j] - max);
                sum += w;
                weighted += w * v[j];
            }
            double expected = weighted / sum;
            Assert.True(Math.Abs(o[i] - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected)),
                $"{variant}: q = {q[i]}: output {o[i]:E8}, expected {expected:E8}");
        }
    }

    /// <summary>Q, K and V as column slices of one fused [B, L, 3*H*d] projection output.</summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void Fused_qkv_slices_match_the_reference(string variant)
    {
        const int batch = 2, heads = 8, length = 96, d = 40, width = heads * d, stride = 3 * width;
        var random = new Random(7);
        var qkv = new float[batch * length * stride];
        for (int n = 0; n < qkv.Length; n++)
        {
            qkv[n] = random.NextSingle() * 2 - 1;
        }
        var expected = new float[batch * length * width];
        var actual = new float[batch * length * width];
        fixed (float* x = qkv)
        fixed (float* e = expected)
        fixed (float* a = actual)
        {
            var reference = new AttentionProblem(
                x, stride, x + width, stride, x + 2 * width, stride, e, width, batch, heads, length, length, d);
            AttentionKernels.Attention_Scalar(reference);
            var problem = reference;
            problem.O = a;
            Kernel(variant)(problem);
        }
        double diff = 0, norm = 0;
        for (int n = 0; n < expected.Length; n++)
        {
            diff += (double)(actual[n] - expected[n]) * (actual[n] - expected[n]);
            norm += (double)expected[n] * expected[n];
        }
        Assert.True(Math.Sqrt(diff / norm) <= Tolerance, $"{variant}: relative L2 error {Math.Sqrt(diff / norm):E2}");
    }

    [Fact]
    public void Run_rejects_strides_narrower_than_the_heads()
    {
        var buffer = new float[64];
        Assert.Throws<ArgumentException>(() =>
        {
            fixed (float* p = buffer)
            {
                AttentionKernels.Run(new AttentionProblem(p, 15, p, 16, p, 16, p, 16, 1, 2, 2, 2, 8));
            }
        });
        Assert.Throws<ArgumentException>(() =>
        {
            fixed (float* p = buffer)
            {
                AttentionKernels.Run(new AttentionProblem(p, 16, p, 16, p, 16, p, 16, 1, 2, 0, 2, 8));
            }
        });
    }
}
