using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Engine.Vae;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// Memory modes (components resident vs loaded one at a time), load-time accounting, and cancellation inside the
/// long operations (a UNet forward, a VAE decode), not only between steps.
/// </summary>
public sealed class PipelineMemoryTests
{
    private static readonly GenerateRequest Request = new()
    {
        Prompt = "a red cube", Steps = 3, Width = 64, Height = 64, Scheduler = "dpm++-2m", Seed = 5,
    };

    [FixtureFact]
    public void Sequential_mode_gives_the_resident_result_and_reloads_per_request()
    {
        string path = Fixtures.Path("tiny/model");
        using var resident = StableDiffusionPipeline.Load(path);
        using var sequential = StableDiffusionPipeline.Load(path, pipelineOptions: new PipelineOptions { Memory = PipelineMemory.Sequential });
        using GenerateResult expected = resident.Generate(Request);
        using GenerateResult again = resident.Generate(Request);
        using GenerateResult first = sequential.Generate(Request);
        using GenerateResult second = sequential.Generate(Request);

        Assert.True(expected.Image.Span.SequenceEqual(first.Image.Span));
        Assert.True(expected.Image.Span.SequenceEqual(second.Image.Span));
        Assert.True(expected.Latents.Span.SequenceEqual(again.Latents.Span), "a resident pipeline reuses its components unchanged");
        Assert.Equal(TimeSpan.Zero, again.Loading); // loaded once, by Load
        Assert.True(first.Loading > TimeSpan.Zero && second.Loading > TimeSpan.Zero, "sequential mode loads in every request");
    }

    [FixtureFact]
    public void A_cancelled_token_stops_a_unet_forward_and_a_vae_decode()
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var unet = new UNet2DConditionModel(source.UNet!, source.Weights(ModelComponent.Unet));
        using var vae = new AutoencoderKL(source.Vae!, source.Weights(ModelComponent.Vae));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        using Tensor sample = Tensor.Allocate([1, 8, 8, unet.Config.InChannels]);
        using Tensor context = Tensor.Allocate([1, 77, unet.Config.CrossAttentionDim[0]]);
        using Tensor output = Tensor.Allocate([1, 8, 8, unet.Config.OutChannels]);
        Assert.ThrowsAny<OperationCanceledException>(() => unet.Forward(sample, [10f], context, output, cancelled.Token));

        using Tensor latents = Tensor.Allocate([1, 8, 8, vae.Config.LatentChannels]);
        using Tensor image = Tensor.Allocate([1, 8 * vae.Factor, 8 * vae.Factor, vae.Config.OutChannels]);
        Assert.ThrowsAny<OperationCanceledException>(() => vae.Decode(latents, image, cancelled.Token));
        using Tensor mean = Tensor.Allocate([1, 8, 8, vae.Config.LatentChannels]);
        using Tensor logvar = Tensor.Allocate([1, 8, 8, vae.Config.LatentChannels]);
        Assert.ThrowsAny<OperationCanceledException>(() => vae.Encode(image, mean, logvar, cancelled.Token));

        // The same calls run once the token is not cancelled: the buffers they planned are released on request.
        unet.Forward(sample, [10f], context, output);
        Assert.True(unet.RunBufferBytes > 0);
        unet.ReleaseRunBuffers();
        Assert.Equal(0, unet.RunBufferBytes);
    }
}
