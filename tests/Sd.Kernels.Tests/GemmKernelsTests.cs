using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Gemm;

namespace Sd.Kernels.Tests;

/// <summary>
/// Every GEMM variant against the triple-loop reference on awkward shapes: sizes not multiples of MR/NR/the K block,
/// remainders in every dimension, leading dimensions wider than the matrices, bias and residual (also in place).
/// </summary>
public unsafe class GemmKernelsTests
{
    public static TheoryData<string> Variants()
    {
        var data = new TheoryData<string> { "scalar" };
        if (Vector256.IsHardwareAccelerated) data.Add("v256");
        if (Vector512.IsHardwareAccelerated) data.Add("v512");
        return data;
    }

    private static GemmVariant Variant(string name) => name switch
    {
        "v512" => GemmVariant.Vector512,
        "v256" => GemmVariant.Vector256,
        _ => GemmVariant.Scalar,
    };

    private static readonly (int M, int N, int K)[] Shapes =
    [
        (1, 1, 1), (1, 33, 7), (13, 1, 5), (14, 32, 256), (15, 33, 257), (29, 17, 3), (100, 77, 300),
        (257, 65, 513), (3, 320, 40), (77, 96, 64),
        (150, 200, 700), // a short M taken as one row block of 11 micro-panels (AVX-512), column groups sharing A
        (200, 90, 300), // a short M with under 2 panels per thread (AVX-512): 2 row blocks x one-panel groups sharing A
        (20, 96, 45000), // a short M shared by several column groups, A packed once per K chunk, several chunks
        // Last micro-panels of 13, 4, 8, 9 and 12 rows (AVX-512's 14-row panel): the 4- and 8-row kernels, one or two calls.
        (13, 64, 40), (18, 64, 50), (22, 32, 17), (23, 64, 270), (40, 96, 300),
        // A short M (one row block): K at its deepest single K block (640), one past it (two of 321, 320), and
        // 1700 in three blocks of 567, 567, 566.
        (130, 70, 640), (33, 40, 641), (30, 40, 1700),
        // A long M (several row blocks): K at its deepest single K block (1280) and one past it (641 + 640).
        (600, 40, 1280), (580, 70, 1281),
        // The largest A block: 40 micro-panels (AVX-512) x a 640-deep K block.
        (560, 40, 640),
        // The largest M taken as one row block (40 AVX-512 micro-panels) and one row past it (8-panel blocks).
        (560, 70, 300), (561, 33, 270),
        // A short M with few panels split into one row block per thread (37 micro-panels, 5 panels), its last block short.
        (512, 130, 40),
    ];

    /// <summary>No epilogue, bias only, residual only, both: the microkernels fuse each into their final store.</summary>
    private static readonly (bool Bias, bool Residual)[] Epilogues = [(false, false), (true, false), (false, true), (true, true)];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Matches_the_reference_on_awkward_shapes(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(42);
        foreach ((int m, int n, int k) in Shapes)
        {
            foreach ((bool withBias, bool withResidual) in Epilogues)
            {
                int lda = k + 3, ldw = k + 1, ldc = n + 5;
                float[] a = RandomArray(random, m * lda);
                float[] w = RandomArray(random, n * ldw);
                float[] bias = RandomArray(random, n);
                float[] residual = RandomArray(random, m * ldc);
                var expected = new float[m * ldc];
                var actual = new float[m * ldc];
                Array.Fill(actual, 999f); // the columns past n must stay untouched
                Array.Fill(expected, 999f);
                fixed (float* pa = a, pw = w, pb = bias, pr = residual, pe = expected, pc = actual)
                {
                    float* biasOrNull = withBias ? pb : null, residualOrNull = withResidual ? pr : null;
                    GemmKernels.Reference(m, n, k, pa, lda, pw, ldw, pe, ldc, biasOrNull, residualOrNull, ldc);
                    using PackedWeights packed = PackedWeights.Pack(pw, n, k, ldw, variant.Nr);
                    GemmKernels.Multiply(variant, m, pa, lda, packed, pc, ldc, biasOrNull, residualOrNull, ldc);
                }
                AssertClose(expected, actual, k, $"{name} {m}x{n}x{k} bias={withBias} residual={withResidual}");
            }
        }
    }

    /// <summary>
    /// A already in micro-panels of 16-channel groups (<see cref="ChannelGroupPanel"/>, Winograd's V) and nothing
    /// packed: K not a multiple of 16, K blocks (they start on a group), short last panels, column groups over the
    /// threads, bias and residual. The slots past K and past the last row hold NaN, so a read of one shows.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void Channel_group_micro_panels_multiply_like_packed_rows(string name)
    {
        GemmVariant variant = Variant(name);
        int mr = variant.Mr;
        var random = new Random(43);
        foreach ((int m, int n, int k) in new[] { (1, 1, 1), (13, 33, 17), (22, 32, 17), (29, 40, 300), (150, 70, 1000), (600, 40, 1300) })
        {
            int depth = (k + 15) / 16 * 16;
            float[] a = RandomArray(random, m * k), w = RandomArray(random, n * k), bias = RandomArray(random, n), residual = RandomArray(random, m * n);
            var grouped = new float[(m + mr - 1) / mr * mr * depth];
            Array.Fill(grouped, float.NaN);
            for (int r = 0; r < m; r++)
            {
                for (int kk = 0; kk < k; kk++)
                {
                    grouped[r / mr * mr * depth + kk / 16 * mr * 16 + r % mr * 16 + kk % 16] = a[r * k + kk];
                }
            }
            var expected = new float[m * n];
            var actual = new float[m * n];
            fixed (float* pa = a, pw = w, pb = bias, pr = residual, pg = grouped, pe = expected, pc = actual)
            {
                GemmKernels.Reference(m, n, k, pa, k, pw, k, pe, n, pb, pr, n);
                using PackedWeights packed = PackedWeights.Pack(pw, n, k, k, variant.Nr);
                var args = new GemmArgs { M = m, A = APacker.ChannelGroups(pg, depth), W = new PackedWeightsView(packed), C = pc, Ldc = n };
                GemmKernels.SetEpilogue(ref args, pb, pr, n);
                GemmKernels.Run(variant, ref args);
            }
            AssertClose(expected, actual, k, $"{name} {m}x{n}x{k}");
        }
    }

    /// <summary>
    /// A packing, vector transpose (short last panels too) and scalar tails alike: every value lands at
    /// panel[k * MR + row] of its MR-row micro-panel, rows past the matrix are zero, and nothing past the packed block
    /// is written.
    /// </summary>
    [Theory]
    [InlineData(14, 14, 16)]
    [InlineData(14, 28, 256)]
    [InlineData(14, 31, 37)]
    [InlineData(14, 5, 100)]
    [InlineData(14, 8, 128)]   // a streamed Winograd layer's 8 tiles: one short panel, transposed with zero rows
    [InlineData(14, 3, 2100)]  // a short panel wider than the zero row: packed by the scalar loop
    [InlineData(6, 13, 40)]
    [InlineData(4, 9, 15)]
    public void Packing_A_puts_every_value_in_its_micro_panel_slot(int mr, int rows, int kc)
    {
        var random = new Random(rows * 100 + kc);
        int ld = kc + 10, k0 = 3;
        float[] a = RandomArray(random, (rows + 2) * ld);
        int panels = (rows + mr - 1) / mr;
        var packed = new float[panels * mr * kc + 32];
        Array.Fill(packed, 555f);
        fixed (float* pa = a, pp = packed)
        {
            GemmKernels.PackRowMajor(pa, ld, 1, rows, k0, kc, mr, pp);
        }
        int width = kc;
        for (int p = 0; p < panels; p++)
        {
            for (int kk = 0; kk < width; kk++)
            {
                for (int rr = 0; rr < mr; rr++)
                {
                    int row = p * mr + rr;
                    float expected = row < rows ? a[(1 + row) * ld + k0 + kk] : 0f;
                    Assert.Equal(expected, packed[p * mr * width + kk * mr + rr]);
                }
            }
        }
        for (int i = panels * mr * width; i < packed.Length; i++)
        {
            Assert.Equal(555f, packed[i]);
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Residual_may_alias_the_output_for_in_place_skip_connections(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(3);
        const int m = 45, n = 50;
        foreach (int k in new[] { 600, 33000 }) // one K chunk of shared A, then several
        {
            float[] a = RandomArray(random, m * k);
            float[] w = RandomArray(random, n * k);
            float[] c = RandomArray(random, m * n);
            var expected = new float[m * n];
            fixed (float* pa = a, pw = w, pc = c, pe = expected)
            {
                GemmKernels.Reference(m, n, k, pa, k, pw, k, pe, n, null, pc, n);
                using PackedWeights packed = PackedWeights.Pack(pw, n, k, k, variant.Nr);
                GemmKernels.Multiply(variant, m, pa, k, packed, pc, n, null, pc, n);
            }
            AssertClose(expected, c, k, $"{name} k={k}");
        }
    }

    /// <summary>
    /// F16/BF16 weights stay 16-bit in the panels and are widened per micro-panel inside the GEMM: the product must be
    /// bit-identical to packing their exact float values (same FMAs in the same order), across K blocks, edge tiles,
    /// subnormal and signed-zero weights.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void Sixteen_bit_weights_give_the_same_product_as_their_float_values(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(5);
        // The last shape is long enough for its weights to be widened once per call instead of once per row block.
        // (29, 70, 1300) crosses K blocks (three of 434, 433, 433); (700, 70, 1280) is a long M with a 1280-deep block.
        foreach ((int m, int n, int k) in new[] { (15, 37, 19), (29, 70, 600), (29, 70, 1300), (3, 16, 257), (700, 70, 1280), (1000, 70, 300) })
        {
            foreach (WeightFormat format in new[] { WeightFormat.F16, WeightFormat.BF16 })
            {
                int ldw = k + 2;
                var bits = new ushort[n * ldw];
                var floats = new float[n * ldw];
                for (int i = 0; i < bits.Length; i++)
                {
                    float value = (random.Next(8)) switch
                    {
                        0 => 3e-6f * (random.NextSingle() - 0.5f), // subnormal in F16
                        1 => -0f,
                        _ => random.NextSingle() * 4 - 2,
                    };
                    bits[i] = format == WeightFormat.F16
                        ? BitConverter.HalfToUInt16Bits((Half)value)
                        : (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16);
                    floats[i] = format == WeightFormat.F16
                        ? (float)BitConverter.UInt16BitsToHalf(bits[i])
                        : BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
                }
                float[] a = RandomArray(random, m * k);
                float[] bias = RandomArray(random, n);
                var expected = new float[m * n];
                var actual = new float[m * n];
                fixed (ushort* pbits = bits)
                fixed (float* pf = floats, pa = a, pb = bias, pe = expected, pc = actual)
                {
                    using PackedWeights narrow = PackedWeights.Pack(pbits, format, n, k, ldw, variant.Nr);
                    using PackedWeights wide = PackedWeights.Pack(pf, n, k, ldw, variant.Nr);
                    Assert.Equal(format, narrow.Format);
                    Assert.Equal(wide.SizeInBytes / 2, narrow.SizeInBytes);
                    GemmKernels.Multiply(variant, m, pa, k, wide, pe, n, pb, null, 0);
                    GemmKernels.Multiply(variant, m, pa, k, narrow, pc, n, pb, null, 0);
                }
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"{name} {format} {m}x{n}x{k}");
            }
        }
    }

    [Fact]
    public void F16_weights_with_Inf_or_NaN_are_refused_at_packing()
    {
        ushort* w = stackalloc ushort[6] { 0x3C00, 0x3C00, 0x3C00, 0x7C00, 0x3C00, 0x3C00 };
        Assert.Throws<ArgumentException>(() => PackedWeights.Pack(w, WeightFormat.F16, 2, 3, 3, 16));
        using PackedWeights asBf16 = PackedWeights.Pack(w, WeightFormat.BF16, 2, 3, 3, 16); // widened exactly by a shift
    }

    /// <summary>
    /// Matrices of 1 MiB or more are packed by the worker pool's threads, each a range of panels: every value must
    /// still land where the layout says (W[j, map(k)] at panel j / NR, row k, column j % NR; zeros past N), for plain
    /// and convolution (tap, channel) order, float32 and 16-bit (gathered as the 32-bit word holding each value: a
    /// source starting mid-word, odd row strides, and an odd-byte source that takes the one-value-at-a-time path), and
    /// a large F16 matrix with a NaN in its last row is still refused.
    /// </summary>
    [Fact]
    public void Large_matrices_packed_in_parallel_follow_the_panel_layout()
    {
        const int nr = GemmMicrokernels.Nr512;
        var random = new Random(7);
        // Plain: 333 x 1000 (11 panels, 1.4 MB), row stride 1003.
        int n = 333, k = 1000, ldw = 1003;
        float[] w = RandomArray(random, n * ldw);
        // Convolution: 70 outputs x 480 channels x 9 taps (3 panels of K = 4320, 1.7 MB).
        int cn = 70, channels = 480, taps = 9;
        float[] cw = RandomArray(random, cn * channels * taps);
        fixed (float* pw = w, pcw = cw)
        {
            using PackedWeights plain = PackedWeights.Pack(pw, n, k, ldw, nr);
            AssertPanels(plain, (j, kk) => w[j * ldw + kk]);
            using PackedWeights conv = PackedWeights.PackConvolution(pcw, WeightFormat.F32, cn, channels, taps, nr);
            AssertPanels(conv, (j, kk) => cw[(j * channels + kk % channels) * taps + kk / channels]);
        }
        // 16-bit sources at byte offsets 0, 2 (mid-word) and 1 (unaligned), all bit patterns (BF16 refuses none); twice
        // the depth, so the packed matrices are as large as the float ones.
        int k16 = 2 * k, ldw16 = 2 * k + 3, channels16 = 2 * channels;
        byte[] raw = new byte[2 * (n * ldw16 + cn * channels16 * taps) + 8];
        random.NextBytes(raw);
        fixed (byte* praw = raw)
        {
            foreach (int shift in new[] { 0, 2, 1 })
            {
                ushort* w16 = (ushort*)(praw + shift), cw16 = w16 + n * ldw16;
                using PackedWeights plain = PackedWeights.Pack(w16, WeightFormat.BF16, n, k16, ldw16, nr);
                AssertPanels(plain, (j, kk) => w16[j * ldw16 + kk]);
                using PackedWeights conv = PackedWeights.PackConvolution(cw16, WeightFormat.BF16, cn, channels16, taps, nr);
                AssertPanels(conv, (j, kk) => cw16[(j * channels16 + kk % channels16) * taps + kk / channels16]);
            }
        }
        var bits = new ushort[n * k];
        Array.Fill(bits, (ushort)0x3C00);
        bits[^1] = 0x7E00;
        fixed (ushort* pbits = bits)
        {
            ushort* p = pbits;
            Assert.Throws<ArgumentException>(() => PackedWeights.Pack(p, WeightFormat.F16, n, k, k, nr));
        }
    }

    private static void AssertPanels(PackedWeights packed, Func<int, int, float> expected) =>
        AssertPanels(packed, (j, kk) => BitConverter.SingleToUInt32Bits(expected(j, kk)), p => BitConverter.SingleToUInt32Bits(((float*)packed.Bytes)[p]));

    private static void AssertPanels(PackedWeights packed, Func<int, int, ushort> expected) =>
        AssertPanels(packed, (j, kk) => expected(j, kk), p => ((ushort*)packed.Bytes)[p]);

    /// <summary>Every stored value's bits against W[j, map(k)], zeros past N.</summary>
    private static void AssertPanels(PackedWeights packed, Func<int, int, uint> expected, Func<long, uint> stored)
    {
        Assert.True(packed.SizeInBytes >= 1 << 20, "the matrix must be large enough to be packed in parallel");
        for (int p = 0; p < packed.Panels; p++)
        {
            for (int kk = 0; kk < packed.K; kk++)
            {
                for (int c = 0; c < packed.PanelWidth; c++)
                {
                    int j = p * packed.PanelWidth + c;
                    uint actual = stored(((long)p * packed.K + kk) * packed.PanelWidth + c);
                    uint want = j < packed.N ? expected(j, kk) : 0;
                    if (actual != want)
                    {
                        Assert.Fail($"{packed.Format} panel {p}, k {kk}, column {c}: {actual:X}, expected {want:X}");
                    }
                }
            }
        }
    }

    /// <summary>
    /// The fused GEGLU projection equals the product followed by <see cref="Elementwise.Pointwise.Geglu(float*, float*, nint, nint, nint)"/>
    /// bit for bit (the same microkernel calls in the same K order, the same GEGLU kernel): on a long M, fused (at
    /// least two row blocks per worker thread, the last one short, K in one block and in three of 867), and on a short M,
    /// which stores C in the temporary first. Columns past F in each output row stay untouched.
    /// </summary>
    [Theory]
    [InlineData(37, false)]
    [InlineData(2600, false)]
    [InlineData(37, true)]
    public void Geglu_projection_matches_the_product_followed_by_geglu(int k, bool shortM)
    {
        GemmVariant variant = GemmKernels.Selected;
        int rowBlock = 8 * variant.Mr;
        int m = shortM ? 50 : Math.Max(2 * Threading.WorkerPool.Shared.ThreadCount, 6) * rowBlock + 13;
        const int features = 45, n = 2 * features, ldd = features + 7;
        int lda = k + 3;
        var random = new Random(k + m);
        float[] a = RandomArray(random, m * lda);
        float[] w = RandomArray(random, n * k);
        float[] bias = RandomArray(random, n);
        var product = new float[m * n];
        var expected = new float[m * ldd];
        var actual = new float[m * ldd];
        var temp = new float[m * n];
        Array.Fill(expected, 999f);
        Array.Fill(actual, 999f);
        fixed (float* pa = a, pw = w, pb = bias, pp = product, pe = expected, pc = actual, pt = temp)
        {
            using PackedWeights packed = PackedWeights.Pack(pw, n, k, k, variant.Nr);
            GemmKernels.Multiply(variant, m, pa, lda, packed, pp, n, pb, null, 0);
            Elementwise.Pointwise.Geglu(pp, pe, m, features, ldd);
            GemmKernels.MultiplyGeglu(m, pa, lda, packed, pb, pc, ldd, pt);
        }
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                Assert.Fail($"{m}x{n}x{k}: row {i / ldd} column {i % ldd}: {actual[i]:R} vs {expected[i]:R}");
            }
        }
    }

    /// <summary>
    /// The fused feed-forward equals its three steps run in turn (GEGLU projection into a temporary, then the down
    /// projection with the residual accumulated in place) bit for bit, fused (long M, the down projection's K in
    /// several blocks) and not (short M), with float32 and F16 weights (whose row blocks are twice as tall); the
    /// columns past N2 in each hidden row stay untouched.
    /// </summary>
    [Theory]
    [InlineData(37, false, false)]
    [InlineData(37, true, false)]
    [InlineData(37, false, true)]
    public void Geglu_feed_forward_matches_its_steps_in_turn(int k, bool shortM, bool f16)
    {
        GemmVariant variant = GemmKernels.Selected;
        int rowBlock = (f16 ? 16 : 8) * variant.Mr;
        int m = shortM ? 50 : Math.Max(2 * Threading.WorkerPool.Shared.ThreadCount, 6) * rowBlock + 13;
        const int features = 1300, n1 = 2 * features, n2 = 45, ldh = n2 + 3; // the down projection's K: 650 + 650
        var random = new Random(k + m);
        float[] a = RandomArray(random, m * k);
        float[] w1 = RandomArray(random, n1 * k);
        float[] w2 = RandomArray(random, n2 * features);
        float[] b1 = RandomArray(random, n1);
        float[] b2 = RandomArray(random, n2);
        float[] hidden = RandomArray(random, m * ldh);
        float[] expected = [.. hidden];
        float[] actual = [.. hidden];
        var temp = new float[m * n1];
        fixed (float* pa = a, pw1 = w1, pw2 = w2, pb1 = b1, pb2 = b2, pe = expected, pc = actual, pt = temp)
        {
            using PackedWeights up = f16 ? PackHalf(w1, n1, k) : PackedWeights.Pack(pw1, n1, k, k, variant.Nr);
            using PackedWeights down = f16 ? PackHalf(w2, n2, features) : PackedWeights.Pack(pw2, n2, features, features, variant.Nr);
            GemmKernels.MultiplyGeglu(m, pa, k, up, pb1, pt, n1, pt);
            GemmKernels.Multiply(variant, m, pt, n1, down, pe, ldh, pb2, pe, ldh);
            GemmKernels.FeedForwardGeglu(m, pa, k, up, pb1, down, pb2, pc, ldh, pt);
        }
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                Assert.Fail($"{m} rows: row {i / ldh} column {i % ldh}: {actual[i]:R} vs {expected[i]:R}");
            }
        }
    }

    /// <summary>[n, k] weights rounded to F16 and packed as such for the selected kernel.</summary>
    private static PackedWeights PackHalf(float[] w, int n, int k)
    {
        var bits = new ushort[w.Length];
        for (int i = 0; i < w.Length; i++) bits[i] = BitConverter.HalfToUInt16Bits((Half)w[i]);
        fixed (ushort* p = bits)
        {
            return PackedWeights.Pack(p, WeightFormat.F16, n, k, k, GemmKernels.PanelWidth);
        }
    }

    [Fact]
    public void Geglu_products_of_mismatched_shapes_are_refused()
    {
        float* w = stackalloc float[12];
        using PackedWeights odd = PackedWeights.Pack(w, 3, 2, 2, GemmKernels.PanelWidth);
        using PackedWeights up = PackedWeights.Pack(w, 4, 2, 2, GemmKernels.PanelWidth);
        using PackedWeights down = PackedWeights.Pack(w, 2, 3, 3, GemmKernels.PanelWidth);
        float* a = stackalloc float[4];
        float* c = stackalloc float[8];
        Assert.Throws<ArgumentException>(() => GemmKernels.MultiplyGeglu(2, a, 2, odd, null, c, 2, c));
        // The down projection must take the GEGLU's 2 features, not 3.
        Assert.Throws<ArgumentException>(() => GemmKernels.FeedForwardGeglu(2, a, 2, up, null, down, null, c, 2, c));
    }

    [Fact]
    public void Weights_packed_for_another_kernel_are_refused()
    {
        float* w = stackalloc float[4];
        using PackedWeights packed = PackedWeights.Pack(w, 2, 2, 2, 7);
        float* a = stackalloc float[4];
        float* c = stackalloc float[4];
        Assert.Throws<ArgumentException>(() => GemmKernels.Multiply(GemmVariant.Scalar, 2, a, 2, packed, c, 2, null, null, 0));
    }

    /// <summary>
    /// The work split on many threads, which this 2-core machine cannot run: SD 1.5's short products (a 32x32
    /// latent's levels 1-2, M = 128 and 512) get rows split too once their panels are fewer than 2 per thread, while
    /// on 2 (and 8) threads the split stays as measured there.
    /// </summary>
    [Theory]
    [InlineData(512, 20, 2, 266, 1, 20)]   // 512x640x640, 2 threads: one row block per thread
    [InlineData(128, 40, 2, 140, 2, 20)]   // 128x1280x1280, 2 threads: one column group per thread, shared A
    [InlineData(512, 20, 16, 266, 20, 1)]  // 16 threads: 2 row blocks x 20 one-panel groups (was 10 groups of 2)
    [InlineData(512, 20, 8, 518, 7, 3)]    // 8 threads, 2.5 panels per thread: column groups, as before
    [InlineData(128, 40, 16, 140, 14, 3)]  // 16 threads, 2 panels per thread or more: column groups only
    [InlineData(128, 320, 16, 140, 16, 20)] // 128x10240x1280: enough panels, column groups only
    [InlineData(8192, 10, 16, 112, 1, 10)] // a long M: 74 row blocks of 8 micro-panels, each taking every panel
    public void Splits_short_products_over_many_threads(int m, int panels, int threads, int rows, int groups, int perGroup)
    {
        Assert.Equal((rows, groups, perGroup), GemmKernels.Split(14, WeightFormat.F32, m, panels, threads));
    }

    /// <summary>Every split covers every row and panel once: whole micro-panels per row block, no empty group.</summary>
    [Fact]
    public void Every_split_covers_the_product()
    {
        foreach (int threads in new[] { 1, 2, 3, 8, 16, 64 })
        {
            foreach (int m in new[] { 1, 2, 13, 14, 15, 32, 128, 200, 512, 561, 2048, 8192 })
            {
                foreach (int panels in new[] { 1, 2, 3, 7, 10, 20, 40, 97, 320 })
                {
                    (int rows, int groups, int perGroup) = GemmKernels.Split(14, WeightFormat.F32, m, panels, threads);
                    string what = $"m {m}, {panels} panels, {threads} threads: {rows} rows x {groups} groups of {perGroup}";
                    Assert.True(rows > 0 && rows % 14 == 0, what);
                    Assert.True(rows <= (m + 13) / 14 * 14, what);
                    Assert.True(groups >= 1 && perGroup >= 1 && groups * perGroup >= panels && (groups - 1) * perGroup < panels, what);
                }
            }
        }
    }

    internal static float[] RandomArray(Random random, int length)
    {
        var values = new float[length];
        for (int i = 0; i < values.Length; i++) values[i] = random.NextSingle() * 2 - 1;
        return values;
    }

    /// <summary>Sums of k products of values in [-1,1]: float rounding differs with summation order, ~sqrt(k) ulp.</summary>
    private static void AssertClose(float[] expected, float[] actual, int k, string what)
    {
        float tolerance = 1e-5f * MathF.Sqrt(k) + 1e-6f;
        for (int i = 0; i < expected.Length; i++)
        {
            float scale = Math.Max(1f, Math.Abs(expected[i]));
            if (!(Math.Abs(expected[i] - actual[i]) <= tolerance * scale))
            {
                Assert.Fail($"{what}: element {i}: {actual[i]} vs {expected[i]}");
            }
        }
    }
}
