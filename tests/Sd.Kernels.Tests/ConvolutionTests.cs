using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Convolution;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Gemm;
using Xunit.Abstractions;

namespace Sd.Kernels.Tests;

/// <summary>
/// Implicit-GEMM and Winograd convolutions against the direct reference on awkward shapes (every variant), then
/// Winograd against implicit GEMM on every SD 1.5 3x3 layer shape (the selected variant), reporting the error.
/// </summary>
public unsafe class ConvolutionTests(ITestOutputHelper output)
{
    public static TheoryData<string> Variants() => GemmKernelsTests.Variants();

    private static GemmVariant Variant(string name) => name switch
    {
        "v512" => GemmVariant.Vector512,
        "v256" => GemmVariant.Vector256,
        _ => GemmVariant.Scalar,
    };

    private static readonly ConvShape[] AwkwardShapes =
    [
        new(1, 1, 1, 1, 1),
        new(2, 5, 7, 3, 5),
        new(1, 13, 6, 17, 33),
        new(1, 8, 8, 16, 32, 1, 1, 1, 1, 0, 0, 0, 0),           // 1x1
        new(2, 9, 7, 5, 9, 3, 3, 2, 2, 1, 1, 1, 1),             // stride 2, UNet downsample
        new(1, 10, 9, 6, 7, 3, 3, 2, 2, 0, 0, 1, 1),            // stride 2, VAE encoder pad (0,1,0,1)
        new(1, 27, 19, 9, 4),                                   // odd latent size
        new(1, 3, 2, 40, 3),
    ];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Implicit_gemm_matches_direct_convolution(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(11);
        foreach (ConvShape shape in AwkwardShapes)
        {
            foreach (bool epilogue in new[] { false, true })
            {
                Check(shape, random, epilogue, (s, x, w, b, r, y, stride) =>
                {
                    using PackedWeights packed = ImplicitGemmConv.PackWeights(w, s.OutChannels, s.InChannels, s.KernelH, s.KernelW, variant.Nr);
                    ImplicitGemmConv.Run(variant, s, x, packed, b, r, s.OutChannels, y, stride);
                }, 1e-5, $"{name} {shape}");
            }
        }
    }

    /// <summary>
    /// A per-image bias (ResNet conv bias + time embedding) in one implicit GEMM over the batch: row blocks span image
    /// boundaries (35 output pixels per image), so the epilogue must switch bias vectors inside a block.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void Implicit_gemm_adds_each_image_its_own_bias(string name)
    {
        GemmVariant variant = Variant(name);
        CheckPerImageBias(new ConvShape(3, 5, 7, 24, 40), new Random(16), (s, x, w, bias, residual, y, stride) =>
        {
            using PackedWeights packed = ImplicitGemmConv.PackWeights(w, s.OutChannels, s.InChannels, 3, 3, variant.Nr);
            ImplicitGemmConv.Run(variant, s, x, packed, bias, true, residual, s.OutChannels, y, stride);
        }, name);
    }

    /// <summary>
    /// Runs <paramref name="run"/> with one bias vector per image (it passes biasPerImage = true) and a residual,
    /// against the reference run image by image.
    /// </summary>
    private static void CheckPerImageBias(ConvShape s, Random random, ConvRun run, string what)
    {
        int perImageIn = s.Height * s.Width * s.InChannels, perImageOut = s.Height * s.Width * s.OutChannels;
        float[] x = GemmKernelsTests.RandomArray(random, s.Batch * perImageIn);
        float[] w = GemmKernelsTests.RandomArray(random, s.OutChannels * s.InChannels * 9);
        float[] bias = GemmKernelsTests.RandomArray(random, s.Batch * s.OutChannels);
        float[] residual = GemmKernelsTests.RandomArray(random, s.Batch * perImageOut);
        var expected = new float[s.Batch * perImageOut];
        var actual = new float[expected.Length];
        fixed (float* px = x, pw = w, pb = bias, pr = residual, pe = expected, pa = actual)
        {
            for (int n = 0; n < s.Batch; n++)
            {
                ConvReference.Conv2d(s with { Batch = 1 }, px + n * perImageIn, pw, pb + n * s.OutChannels, pr + n * perImageOut, pe + n * perImageOut);
            }
            run(s, px, pw, pb, pr, pa, s.OutChannels);
        }
        double error = RelativeL2(expected, actual);
        Assert.True(error <= 1e-5, $"{what}: relative L2 error {error:E2}");
    }

    /// <summary>
    /// Few-output shapes: 1 to 8 outputs (one or two groups of 4, partial ones), channels below, at and past a vector
    /// (16) with a remainder, pixel counts that leave a partial block of 4, strides, asymmetric padding, 1x1 and 5x5.
    /// </summary>
    private static readonly ConvShape[] FewOutputShapes =
    [
        new(1, 1, 1, 1, 1),
        new(2, 5, 7, 3, 5),
        new(1, 13, 6, 17, 3),
        new(2, 6, 5, 64, 4),                                    // UNet conv_out-like: whole vectors only
        new(1, 7, 9, 37, 8),                                    // two full groups, 2 vectors + a 5-channel remainder
        new(1, 9, 4, 20, 7, 5, 5, 1, 1, 2, 2, 2, 2),            // 5x5
        new(2, 9, 7, 33, 6, 3, 3, 2, 2, 1, 1, 1, 1),            // stride 2
        new(1, 10, 9, 6, 2, 3, 3, 2, 2, 0, 0, 1, 1),            // VAE encoder pad (0,1,0,1)
        new(1, 3, 3, 48, 3, 1, 1, 1, 1, 0, 0, 0, 0),            // 1x1, 9 pixels
    ];

    public static TheoryData<bool> FewOutputVariants() => new() { true, false };

    [Theory]
    [MemberData(nameof(FewOutputVariants))]
    public void Few_outputs_convolution_matches_direct_convolution(bool vector)
    {
        var random = new Random(21);
        foreach (ConvShape shape in FewOutputShapes)
        {
            foreach (bool epilogue in new[] { false, true })
            {
                Check(shape, random, epilogue, (s, x, w, b, r, y, stride) =>
                {
                    using var weights = new FewOutputsWeights(w, s.OutChannels, s.InChannels, s.KernelH, s.KernelW);
                    RunFewOutputs(vector, s, x, weights, b, false, r, y, stride);
                }, 1e-5, $"{(vector ? "vector" : "scalar")} {shape}");
            }
        }
    }

    /// <summary>Per-image bias with 35 output pixels per image, so 4-pixel blocks straddle images; a large enough
    /// problem to split into parallel tasks.</summary>
    [Theory]
    [MemberData(nameof(FewOutputVariants))]
    public void Few_outputs_convolution_adds_each_image_its_own_bias(bool vector) =>
        CheckPerImageBias(new ConvShape(3, 5, 7, 320, 4), new Random(22), (s, x, w, bias, residual, y, stride) =>
        {
            using var weights = new FewOutputsWeights(w, s.OutChannels, s.InChannels, 3, 3);
            RunFewOutputs(vector, s, x, weights, bias, true, residual, y, stride);
        }, vector ? "vector" : "scalar");

    [Fact]
    public void Few_outputs_convolution_refuses_mismatched_weights_and_shapes()
    {
        float[] w = new float[9 * 9 * 4 * 16];
        fixed (float* fixedWeights = w)
        {
            float* pw = fixedWeights;
            Assert.Throws<ArgumentException>(() => new FewOutputsWeights(pw, 9, 16, 3, 3));
            Assert.Throws<ArgumentException>(() => new FewOutputsWeights(pw, 0, 16, 3, 3));
            using var weights = new FewOutputsWeights(pw, 4, 16, 3, 3);
            float[] x = new float[4 * 4 * 17], y = new float[4 * 4 * 4];
            fixed (float* px = x, py = y)
            {
                float* input = px, output = py;
                var wrongChannels = new ConvShape(1, 4, 4, 17, 4);
                Assert.Contains("[4, 16, 3, 3]", Assert.Throws<ArgumentException>(() =>
                    FewOutputsConv.Run(wrongChannels, input, weights, null, false, null, 0, output, 4)).Message);
                Assert.Throws<ArgumentOutOfRangeException>(() =>
                    FewOutputsConv.Run(new ConvShape(1, 4, 4, 16, 4), input, weights, null, false, null, 0, output, 3));
            }
        }
    }

    private static void RunFewOutputs(bool vector, ConvShape s, float* x, FewOutputsWeights weights, float* bias, bool biasPerImage,
        float* residual, float* y, int stride)
    {
        if (vector)
        {
            FewOutputsConv.Run(s, x, weights, bias, biasPerImage, residual, s.OutChannels, y, stride);
        }
        else
        {
            FewOutputsConv.Run_Scalar(s, x, weights, bias, biasPerImage, residual, s.OutChannels, y, stride);
        }
    }

    /// <summary>16-bit conv weights keep their format through the (tap, channel) repacking: same output as floats.</summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void Implicit_gemm_with_bf16_weights_equals_their_float_values(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(13);
        var shape = new ConvShape(2, 9, 7, 5, 9, 3, 3, 2, 2, 1, 1, 1, 1);
        int count = shape.OutChannels * shape.InChannels * 9;
        var bits = new ushort[count];
        var floats = new float[count];
        for (int i = 0; i < count; i++)
        {
            bits[i] = (ushort)(BitConverter.SingleToUInt32Bits(random.NextSingle() - 0.5f) >> 16);
            floats[i] = BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
        }
        float[] input = GemmKernelsTests.RandomArray(random, shape.Batch * shape.Height * shape.Width * shape.InChannels);
        int outputs = shape.Batch * shape.OutHeight * shape.OutWidth * shape.OutChannels;
        var expected = new float[outputs];
        var actual = new float[outputs];
        fixed (ushort* pbits = bits)
        fixed (float* pf = floats, x = input, pe = expected, pa = actual)
        {
            using PackedWeights wide = ImplicitGemmConv.PackWeights(pf, shape.OutChannels, shape.InChannels, 3, 3, variant.Nr);
            using PackedWeights narrow = ImplicitGemmConv.PackWeights(pbits, WeightFormat.BF16, shape.OutChannels, shape.InChannels, 3, 3, variant.Nr);
            ImplicitGemmConv.Run(variant, shape, x, wide, null, null, 0, pe, shape.OutChannels);
            ImplicitGemmConv.Run(variant, shape, x, narrow, null, null, 0, pa, shape.OutChannels);
        }
        Assert.Equal(expected, actual);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Winograd_matches_direct_convolution_on_any_size(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(12);
        foreach (ConvShape shape in AwkwardShapes)
        {
            if (!shape.IsWinogradCandidate) continue;
            foreach (bool epilogue in new[] { false, true })
            {
                Check(shape, random, epilogue, (s, x, w, b, r, y, stride) =>
                {
                    using WinogradWeights packed = WinogradWeights.Create(w, s.OutChannels, s.InChannels, variant.Nr);
                    float[] workspace = new float[WinogradConv.WorkspaceFloats(s.Batch, s.Height, s.Width, s.InChannels, s.OutChannels)];
                    fixed (float* ws = workspace)
                    {
                        WinogradConv.Run(variant, s.Batch, s.Height, s.Width, x, packed, b, false, r, s.OutChannels, y, stride, ws, s.InputStride);
                    }
                }, 1e-5, $"{name} {shape}");
            }
        }
    }

    /// <summary>
    /// Streamed weights need Winograd shapes only; these add several channel blocks and ragged ones, and blocks of 64
    /// tiles or more, whose GEMM tasks take one row of positions and a group of panels.
    /// </summary>
    private static readonly ConvShape[] StreamedShapes =
    [
        .. AwkwardShapes,
        new(2, 6, 9, 200, 40),                                 // two channel blocks (128 + 72), two images
        new(1, 5, 5, 257, 17),                                 // three channel blocks, last of one channel
        new(1, 33, 30, 136, 170),                              // 72 tiles: position rows, panel groups 4 + 2, 10 last columns
        new(2, 20, 60, 20, 40),                                // 150 tiles: two row ranges, two images
    ];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Winograd_with_streamed_weights_matches_direct_convolution(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(14);
        foreach (ConvShape shape in StreamedShapes)
        {
            if (!shape.IsWinogradCandidate) continue;
            foreach (bool epilogue in new[] { false, true })
            {
                Check(shape, random, epilogue, (s, x, w, b, r, y, stride) =>
                {
                    using PackedWeights packed = ImplicitGemmConv.PackWeights(w, s.OutChannels, s.InChannels, 3, 3, variant.Nr);
                    RunStreamed(variant, s, x, packed, b, false, r, y, stride);
                }, 1e-5, $"{name} {shape}");
            }
        }
    }

    /// <summary>
    /// 16-bit weights are widened exactly as the transform loads them (same output as their float values, bit for
    /// bit), in tasks of all 36 positions (12 tiles) and of position rows (70 tiles), and a per-image bias (ResNet conv
    /// bias + time embedding) reaches each image.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void Streamed_winograd_with_16_bit_weights_and_per_image_bias_equals_float_weights(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(15);
        foreach (WeightFormat format in new[] { WeightFormat.F16, WeightFormat.BF16 })
        {
            foreach (var s in new ConvShape[] { new(2, 7, 10, 150, 48), new(2, 20, 28, 150, 48) })
            {
                CheckStreamed16Bit(variant, random, format, s, $"{name} {format} {s}");
            }
        }
    }

    private static void CheckStreamed16Bit(GemmVariant variant, Random random, WeightFormat format, ConvShape s, string name)
    {
        int count = s.OutChannels * s.InChannels * 9;
        var bits = new ushort[count];
        var floats = new float[count];
        for (int i = 0; i < count; i++)
        {
            float value = random.NextSingle() - 0.5f;
            if (format == WeightFormat.F16)
            {
                bits[i] = BitConverter.HalfToUInt16Bits((Half)value);
                floats[i] = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            }
            else
            {
                bits[i] = (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16);
                floats[i] = BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
            }
        }
        float[] input = GemmKernelsTests.RandomArray(random, s.Batch * s.Height * s.Width * s.InChannels);
        float[] bias = GemmKernelsTests.RandomArray(random, s.Batch * s.OutChannels);
        int outputs = s.Batch * s.Height * s.Width * s.OutChannels;
        var wide = new float[outputs];
        var narrow = new float[outputs];
        var reference = new float[outputs];
        fixed (ushort* pbits = bits)
        fixed (float* pf = floats, x = input, pb = bias, pw = wide, pn = narrow, pr = reference)
        {
            using PackedWeights f32 = ImplicitGemmConv.PackWeights(pf, s.OutChannels, s.InChannels, 3, 3, variant.Nr);
            using PackedWeights narrowWeights = ImplicitGemmConv.PackWeights(pbits, format, s.OutChannels, s.InChannels, 3, 3, variant.Nr);
            RunStreamed(variant, s, x, f32, pb, true, null, pw, s.OutChannels);
            RunStreamed(variant, s, x, narrowWeights, pb, true, null, pn, s.OutChannels);
            var one = s with { Batch = 1 };
            int perImage = s.Height * s.Width;
            for (int n = 0; n < s.Batch; n++)
            {
                ConvReference.Conv2d(one, x + (nint)n * perImage * s.InChannels, pf, pb + n * s.OutChannels, null, pr + (nint)n * perImage * s.OutChannels);
            }
        }
        Assert.Equal(wide, narrow);
        double error = RelativeL2(reference, wide);
        Assert.True(error <= 1e-5, $"{name}: relative L2 error {error:E2} against the direct convolution");
    }

    /// <summary>
    /// A fused LeakyReLU or PReLU, with stored and streamed weights, gives the convolution (bias and residual added)
    /// followed by the activation's scalar reference, bit for bit: whole vectors of channels, then 5 in the scalar tail.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void Winograd_with_a_fused_activation_equals_the_activation_after_it(string name)
    {
        GemmVariant variant = Variant(name);
        var random = new Random(17);
        var s = new ConvShape(2, 9, 11, 20, 37);
        int pixels = s.Batch * s.Height * s.Width, outputs = pixels * s.OutChannels;
        float[] x = GemmKernelsTests.RandomArray(random, pixels * s.InChannels);
        float[] w = GemmKernelsTests.RandomArray(random, s.OutChannels * s.InChannels * 9);
        float[] bias = GemmKernelsTests.RandomArray(random, s.OutChannels);
        float[] residual = GemmKernelsTests.RandomArray(random, outputs);
        float[] slopes = GemmKernelsTests.RandomArray(random, s.OutChannels);
        float[] workspace = new float[Math.Max(WinogradConv.WorkspaceFloats(s.Batch, s.Height, s.Width, s.InChannels, s.OutChannels),
            WinogradConv.StreamedWorkspaceFloats(s.Batch, s.Height, s.Width, s.InChannels, s.OutChannels))];
        fixed (float* px = x, pw = w, pb = bias, pr = residual, pslopes = slopes, ws = workspace)
        {
            using WinogradWeights stored = WinogradWeights.Create(pw, s.OutChannels, s.InChannels, variant.Nr);
            using PackedWeights raw = ImplicitGemmConv.PackWeights(pw, s.OutChannels, s.InChannels, 3, 3, variant.Nr);
            foreach (bool streamed in new[] { false, true })
            {
                foreach (bool prelu in new[] { false, true })
                {
                    var separate = new float[outputs];
                    var fused = new float[outputs];
                    fixed (float* py = separate, pf = fused)
                    {
                        for (int pass = 0; pass < 2; pass++)
                        {
                            // Pass 0: no activation, then the scalar reference over the output; pass 1: fused.
                            float* y = pass == 0 ? py : pf;
                            ConvActivation activation = pass == 0 ? default : prelu ? ConvActivation.Prelu(pslopes) : ConvActivation.LeakyRelu(0.2f);
                            if (streamed)
                            {
                                WinogradConv.RunStreamed(variant, s.Batch, s.Height, s.Width, px, raw, pb, false, pr, s.OutChannels, y, s.OutChannels, ws, 0, activation);
                            }
                            else
                            {
                                WinogradConv.Run(variant, s.Batch, s.Height, s.Width, px, stored, pb, false, pr, s.OutChannels, y, s.OutChannels, ws, 0, activation);
                            }
                        }
                        if (prelu) FeatureMapKernels.Prelu_Scalar(py, pixels, s.OutChannels, s.OutChannels, pslopes);
                        else FeatureMapKernels.LeakyRelu_Scalar(py, pixels, s.OutChannels, s.OutChannels, 0.2f);
                    }
                    Assert.True(separate.AsSpan().SequenceEqual(fused), $"{name} streamed={streamed} prelu={prelu}");
                }
            }
        }
    }

    private static void RunStreamed(GemmVariant variant, ConvShape s, float* x, PackedWeights packed, float* bias, bool biasPerImage,
        float* residual, float* y, int stride)
    {
        float[] workspace = new float[WinogradConv.StreamedWorkspaceFloats(s.Batch, s.Height, s.Width, s.InChannels, s.OutChannels)];
        fixed (float* ws = workspace)
        {
            WinogradConv.RunStreamed(variant, s.Batch, s.Height, s.Width, x, packed, bias, biasPerImage, residual, s.OutChannels, y, stride, ws,
                s.InputStride);
        }
    }

    private delegate void ConvRun(ConvShape shape, float* x, float* w, float* bias, float* residual, float* y, int outputStride);

    /// <summary>
    /// The convolution against the direct reference, then again reading x as the first channels of wider pixels (NaN
    /// in the channels past Cin, so reading one shows): the same output bit for bit.
    /// </summary>
    private void Check(ConvShape s, Random random, bool epilogue, ConvRun run, double tolerance, string what)
    {
        int outPixels = s.Batch * s.OutHeight * s.OutWidth;
        int stride = s.OutChannels + 3; // write into a wider tensor: columns past Cout must stay untouched
        float[] x = GemmKernelsTests.RandomArray(random, s.Batch * s.Height * s.Width * s.InChannels);
        float[] w = GemmKernelsTests.RandomArray(random, s.OutChannels * s.InChannels * s.KernelH * s.KernelW);
        float[] b = GemmKernelsTests.RandomArray(random, s.OutChannels);
        float[] r = GemmKernelsTests.RandomArray(random, outPixels * s.OutChannels);
        var expected = new float[outPixels * s.OutChannels];
        var actual = new float[outPixels * stride];
        Array.Fill(actual, 777f);
        fixed (float* px = x, pw = w, pb = b, pr = r, pe = expected, pa = actual)
        {
            ConvReference.Conv2d(s, px, pw, epilogue ? pb : null, epilogue ? pr : null, pe);
            run(s, px, pw, epilogue ? pb : null, epilogue ? pr : null, pa, stride);
        }
        var compact = new float[expected.Length];
        for (int p = 0; p < outPixels; p++)
        {
            for (int c = 0; c < stride; c++)
            {
                if (c < s.OutChannels) compact[p * s.OutChannels + c] = actual[p * stride + c];
                else Assert.Equal(777f, actual[p * stride + c]);
            }
        }
        double error = RelativeL2(expected, compact);
        Assert.True(error <= tolerance, $"{what} epilogue={epilogue}: relative L2 error {error:E2}");

        ConvShape wide = s with { InputStride = s.InChannels + 5 };
        var wideX = new float[(long)s.Batch * s.Height * s.Width * wide.InputStride];
        Array.Fill(wideX, float.NaN);
        for (int p = 0; p < s.Batch * s.Height * s.Width; p++)
        {
            Array.Copy(x, p * s.InChannels, wideX, p * wide.InputStride, s.InChannels);
        }
        var fromWide = new float[outPixels * stride];
        Array.Fill(fromWide, 777f);
        fixed (float* px = wideX, pw = w, pb = b, pr = r, pa = fromWide)
        {
            run(wide, px, pw, epilogue ? pb : null, epilogue ? pr : null, pa, stride);
        }
        Assert.True(actual.AsSpan().SequenceEqual(fromWide), $"{what} epilogue={epilogue}: input pixel stride {wide.InputStride} changed the output");
    }

    /// <summary>
    /// Streaming stores write the same V as cached ones: tiles inside the image and sticking out of it, and both
    /// vector paths' channels (48 = 3 x 16).
    /// </summary>
    [Fact]
    public void Winograd_input_transform_with_streaming_stores_equals_cached_stores()
    {
        const int height = 9, width = 7, channels = 48;
        nint ldv = 3 * channels; // three tiles' rows per position: positions 576 bytes apart, 64-byte aligned
        float[] image = GemmKernelsTests.RandomArray(new Random(16), height * width * channels);
        nuint bytes = (nuint)(36 * ldv) * sizeof(float);
        float* cached = (float*)NativeMemory.AlignedAlloc(bytes, 64), streamed = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        try
        {
            fixed (float* pi = image)
            {
                foreach ((int y0, int x0) in new[] { (-1, -1), (3, 2), (5, 4) })
                {
                    NativeMemory.Fill(cached, bytes, 0x7F);
                    NativeMemory.Fill(streamed, bytes, 0x7F);
                    WinogradTransforms.InputTile(pi, height, width, channels, channels, y0, x0, cached, ldv, groupStride: 16, nonTemporal: false);
                    WinogradTransforms.InputTile(pi, height, width, channels, channels, y0, x0, streamed, ldv, groupStride: 16, nonTemporal: true);
                    Assert.Equal(new ReadOnlySpan<float>(cached, (int)(36 * ldv)).ToArray(), new ReadOnlySpan<float>(streamed, (int)(36 * ldv)).ToArray());
                    Assert.NotEqual(0x7F7F7F7F, BitConverter.SingleToInt32Bits(streamed[35 * ldv + channels - 1]));
                }
            }
        }
        finally
        {
            NativeMemory.AlignedFree(cached);
            NativeMemory.AlignedFree(streamed);
        }
    }

    /// <summary>Every 3x3 stride-1 convolution of SD 1.5 (UNet at 64x64 latents, VAE decoder/encoder), batch 1.</summary>
    public static TheoryData<int, int, int, int> SdShapes() => new()
    {
        { 64, 64, 320, 320 }, { 64, 64, 640, 320 }, { 64, 64, 960, 320 },
        { 32, 32, 320, 640 }, { 32, 32, 640, 640 }, { 32, 32, 960, 640 }, { 32, 32, 1280, 640 }, { 32, 32, 1920, 640 },
        { 16, 16, 640, 1280 }, { 16, 16, 1280, 1280 }, { 16, 16, 1920, 1280 }, { 16, 16, 2560, 1280 },
        { 8, 8, 1280, 1280 }, { 8, 8, 2560, 1280 },
        { 64, 64, 512, 512 }, { 128, 128, 512, 512 }, { 256, 256, 256, 256 }, { 256, 256, 512, 256 },
        { 512, 512, 128, 128 }, { 512, 512, 256, 128 },
    };

    [Theory]
    [MemberData(nameof(SdShapes))]
    public void Winograd_matches_implicit_gemm_on_sd_layer_shapes(int height, int width, int cin, int cout)
    {
        GemmVariant variant = GemmKernels.Selected;
        var s = new ConvShape(1, height, width, cin, cout);
        var random = new Random(height * 31 + cin);
        // Activations ~ unit scale, weights ~ kaiming-like scale, as in a trained network's layer.
        float weightScale = 1f / MathF.Sqrt(9 * cin);
        float[] x = GemmKernelsTests.RandomArray(random, height * width * cin);
        float[] w = GemmKernelsTests.RandomArray(random, cout * cin * 9);
        for (int i = 0; i < w.Length; i++) w[i] *= weightScale;
        var direct = new float[height * width * cout];
        var winograd = new float[direct.Length];
        var streamed = new float[direct.Length];
        fixed (float* px = x, pw = w, pd = direct, pg = winograd, ps = streamed)
        {
            using PackedWeights packed = ImplicitGemmConv.PackWeights(pw, cout, cin, 3, 3, variant.Nr);
            ImplicitGemmConv.Run(variant, s, px, packed, null, null, cout, pd, cout);
            using WinogradWeights transformed = WinogradWeights.Create(pw, cout, cin, variant.Nr);
            // A 64-byte aligned workspace, as the engine's arena gives: blocks with V and M over 16 MiB then write V
            // with streaming stores (the 512-channel shapes and most 640- to 2560-channel ones here); the 128- and
            // 256-channel ones run in several cache-sized blocks.
            nuint bytes = (nuint)WinogradConv.WorkspaceFloats(1, height, width, cin, cout) * sizeof(float);
            float* ws = (float*)NativeMemory.AlignedAlloc(bytes, 64);
            try
            {
                WinogradConv.Run(variant, 1, height, width, px, transformed, null, false, null, cout, pg, cout, ws);
            }
            finally
            {
                NativeMemory.AlignedFree(ws);
            }
            RunStreamed(variant, s, px, packed, null, false, null, ps, cout);
        }
        double error = RelativeL2(direct, winograd), streamedError = RelativeL2(direct, streamed);
        output.WriteLine($"{height}x{width} {cin}->{cout}: Winograd vs direct relative L2 {error:E2}, streamed weights {streamedError:E2}");
        Assert.True(error <= 1e-5, $"relative L2 error {error:E2}");
        Assert.True(streamedError <= 1e-5, $"streamed weights: relative L2 error {streamedError:E2}");
    }

    /// <summary>
    /// U = G g G^T per kernel, stored at (position, ci, co): eight output channels at a time in vectors of doubles and
    /// the rest one at a time must agree bit for bit (channels 8..12 repeat channels 0..4's kernels), and both match
    /// the transform in double to float rounding.
    /// </summary>
    [Fact]
    public void Winograd_weight_transform_lanes_equal_the_one_kernel_reference()
    {
        const int cout = 13, cin = 5;
        var random = new Random(3);
        float[] w = GemmKernelsTests.RandomArray(random, cout * cin * 9);
        Array.Copy(w, 0, w, 8 * cin * 9, 5 * cin * 9);
        double[,] g =
        {
            { 1 / 4.0, 0, 0 }, { -1 / 6.0, -1 / 6.0, -1 / 6.0 }, { -1 / 6.0, 1 / 6.0, -1 / 6.0 },
            { 1 / 24.0, 1 / 12.0, 1 / 6.0 }, { 1 / 24.0, -1 / 12.0, 1 / 6.0 }, { 0, 0, 1 },
        };
        int nr = GemmKernels.Selected.Nr;
        fixed (float* pw = w)
        {
            using WinogradWeights transformed = WinogradWeights.Create(pw, cout, cin, nr);
            for (int i = 0; i < 6; i++)
            {
                for (int j = 0; j < 6; j++)
                {
                    float* u = transformed[i * 6 + j].Data;
                    for (int ci = 0; ci < cin; ci++)
                    {
                        for (int co = 0; co < cout; co++)
                        {
                            double expected = 0;
                            for (int a = 0; a < 3; a++)
                            {
                                for (int b = 0; b < 3; b++)
                                {
                                    expected += g[i, a] * w[(co * cin + ci) * 9 + a * 3 + b] * g[j, b];
                                }
                            }
                            float actual = u[ci * nr + co];
                            Assert.True(Math.Abs(actual - expected) <= 1e-6 * (Math.Abs(expected) + 1e-3), $"U[{i},{j}] co {co} ci {ci}: {actual} vs {expected}");
                            if (co >= 8)
                            {
                                Assert.Equal(u[ci * nr + co - 8], actual);
                            }
                        }
                    }
                }
            }
        }
    }

    internal static double RelativeL2(float[] expected, float[] actual)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            diff += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return norm == 0 ? Math.Sqrt(diff) : Math.Sqrt(diff / norm);
    }
}
