using Sd.Engine.Tensors;
using Sd.Engine.Vae;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// Tiled VAE runs: the tile geometry and blending are exact for a position-independent operation and the whole
/// output is covered. On a real network tiling is an approximation by design: the mid-block attention and every
/// GroupNorm see one tile instead of the image. With the tiny fixture's random weights that costs about 13% relative
/// L2 (decode) — trained VAEs are far smoother — so the network test bounds the difference loosely and reports it.
/// </summary>
public sealed unsafe class VaeTilingTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(32, 32)]
    [InlineData(80, 72)]
    [InlineData(33, 100)]
    [InlineData(7, 90)]
    public void Tiling_a_pixelwise_operation_reproduces_it_exactly(int height, int width)
    {
        // out(y, x) = 2 * in(y / 8, x / 8) + 1: every tile computes exactly what the whole image would.
        using Tensor input = Tensor.Allocate([2, height, width, 3]);
        var random = new Random(5);
        for (int i = 0; i < input.Length; i++) input.Span[i] = random.NextSingle();
        using Tensor whole = Tensor.Allocate([2, height * 8, width * 8, 3]);
        using Tensor tiled = Tensor.Allocate([2, height * 8, width * 8, 3]);
        tiled.Span.Fill(float.NaN);
        Upscale(input, whole);
        VaeTilingRunner.Run(input, tiled, 16, 8, 1, Upscale);
        for (int i = 0; i < whole.Length; i++)
        {
            Assert.True(Math.Abs(whole.Span[i] - tiled.Span[i]) <= 1e-6f, $"element {i}: {tiled.Span[i]} vs {whole.Span[i]}");
        }
    }

    private static void Upscale(Tensor input, Tensor output)
    {
        int h = output.Dim(1), w = output.Dim(2), c = output.Dim(3);
        for (int n = 0; n < output.Dim(0); n++)
        for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        for (int k = 0; k < c; k++)
        {
            float v = input.Data[(((long)n * input.Dim(1) + y / 8) * input.Dim(2) + x / 8) * c + k];
            output.Data[(((long)n * h + y) * w + x) * c + k] = 2 * v + 1;
        }
    }

    [FixtureFact]
    public void Tiled_decode_and_encode_stay_close_to_untiled_on_the_real_network()
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var untiled = new AutoencoderKL(source.Vae!, source.Weights(ModelComponent.Vae), new VaeOptions { Tiling = VaeTiling.Never });
        using var tiled = new AutoencoderKL(source.Vae!, source.Weights(ModelComponent.Vae), new VaeOptions { Tiling = VaeTiling.Always });
        Assert.Equal(32, tiled.LatentTile);
        Assert.True(tiled.DecodeIsTiled(1, 80, 72));
        Assert.False(tiled.DecodeIsTiled(1, 32, 32));
        Assert.False(untiled.DecodeIsTiled(1, 80, 72));

        using Tensor latents = Tensor.Allocate([1, 80, 72, 4]);
        var random = new Random(9);
        for (int i = 0; i < latents.Length; i++) latents.Span[i] = random.NextSingle() * 2 - 1;
        using Tensor a = Tensor.Allocate([1, 160, 144, 3]);
        using Tensor b = Tensor.Allocate([1, 160, 144, 3]);
        b.Span.Fill(float.NaN); // every pixel must be written (Decode refuses NaN output)
        untiled.Decode(latents, a);
        tiled.Decode(latents, b);
        double decodeError = Compare.RelativeL2(a.Span, b.Span);
        output.WriteLine($"tiny VAE decode 80x72 latents, tiled vs untiled: relative L2 {decodeError:E2}");
        Assert.True(decodeError < 0.5, $"tiled decode differs by {decodeError:E2}");

        using Tensor image = Tensor.Allocate([1, 160, 144, 3]);
        for (int i = 0; i < image.Length; i++) image.Span[i] = random.NextSingle() * 2 - 1;
        using Tensor meanA = Tensor.Allocate([1, 80, 72, 4]), logvarA = Tensor.Allocate([1, 80, 72, 4]);
        using Tensor meanB = Tensor.Allocate([1, 80, 72, 4]), logvarB = Tensor.Allocate([1, 80, 72, 4]);
        untiled.Encode(image, meanA, logvarA);
        tiled.Encode(image, meanB, logvarB);
        double encodeError = Compare.RelativeL2(meanA.Span, meanB.Span);
        output.WriteLine($"tiny VAE encode 160x144, tiled vs untiled mean: relative L2 {encodeError:E2}");
        Assert.True(encodeError < 0.5, $"tiled encode differs by {encodeError:E2}");
    }

    [FixtureFact]
    public void Auto_tiles_only_above_the_memory_budget()
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var small = new AutoencoderKL(source.Vae!, source.Weights(ModelComponent.Vae), new VaeOptions { MemoryBudgetBytes = 1 << 20 });
        using var large = new AutoencoderKL(source.Vae!, source.Weights(ModelComponent.Vae), new VaeOptions { MemoryBudgetBytes = 1L << 40 });
        Assert.True(small.DecodeIsTiled(1, 200, 200));
        Assert.False(large.DecodeIsTiled(1, 200, 200));
    }
}
