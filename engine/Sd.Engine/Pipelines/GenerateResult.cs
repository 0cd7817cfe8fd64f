using Sd.Engine.Tensors;

namespace Sd.Engine.Pipelines;

/// <summary>The result of one generation: final latents and the decoded image (NHWC, about [-1, 1]).</summary>
public sealed class GenerateResult : IDisposable
{
    internal GenerateResult(Tensor latents, Tensor image, PhaseTimes times, ulong seed)
    {
        Latents = latents;
        Image = image;
        Seed = seed;
        Loading = times.Loading;
        TextEncoding = times.Text;
        Denoising = times.Denoising;
        Decoding = times.Decoding;
    }

    /// <summary>[1, h, w, 4] NHWC, before the VAE scaling.</summary>
    public Tensor Latents { get; }

    /// <summary>[1, H, W, 3] NHWC decoder output; <see cref="Imaging.ImageConversion.ToRgb8"/> makes a picture.</summary>
    public Tensor Image { get; }

    /// <summary>The generator seed of this image: the request's seed plus its index in a batch.</summary>
    public ulong Seed { get; }

    /// <summary>
    /// Component loads this image caused (none for a resident pipeline after Load). In a batch the text encoder's
    /// load is counted on the first image, and the UNet's and VAE's on the image that needed them first.
    /// </summary>
    public TimeSpan Loading { get; }

    /// <summary>The prompt encoding; a batch encodes once, counted on its first image (zero on the others).</summary>
    public TimeSpan TextEncoding { get; }

    /// <summary>The denoising loop, with the VAE encode of an init image.</summary>
    public TimeSpan Denoising { get; }

    public TimeSpan Decoding { get; }

    public void Dispose()
    {
        Latents.Dispose();
        Image.Dispose();
    }
}
