using Sd.Engine.Adapters;
using Sd.Engine.Tensors;
using Sd.Engine.Vision;
using Sd.Loaders.Config;
using Sd.Loaders.Png;

namespace Sd.Engine.Pipelines;

/// <summary>
/// A request's IP-Adapters with their pictures encoded: per unit of N pictures the image tokens [2N, T, D] of what the
/// unconditioned rows of a guided batch see (the first N) and of the pictures (the last N), as diffusers' encode_image
/// and prepare_ip_adapter_image_embeds make them: zeros_like(image_embeds) for the plain adapter, the encoding of
/// zeros_like(pixel_values) for Plus and full-face, which take the encoder's penultimate hidden states (the encoder
/// keeps those of zero pixels). A batch row sees its N pictures' tokens side by side, N x T of them. The image encoder
/// runs once per generation, on all of a unit's pictures at once; each denoising loop makes its batch's conditions
/// from these.
/// </summary>
internal sealed class IpAdapterPass : IDisposable
{
    private readonly List<(IpAdapterModel Model, Tensor Tokens, float[] LayerScales, IReadOnlyList<PngImage>? Masks)> _units = [];
    private readonly UNetConfig _unet;

    private IpAdapterPass(UNetConfig unet) => _unet = unet;

    /// <summary>Encodes every unit's picture and sets its scales for a UNet of <paramref name="unet"/>; null when there is none.</summary>
    public static IpAdapterPass? Create(IReadOnlyList<IpAdapterUnit> units, UNetConfig unet, CancellationToken cancellation)
    {
        if (units.Count == 0)
        {
            return null;
        }
        var pass = new IpAdapterPass(unet);
        try
        {
            foreach (IpAdapterUnit unit in units)
            {
                cancellation.ThrowIfCancellationRequested();
                using Tensor input = EncoderOutput(unit);
                float[] scales = unit.LayerScales(unet);
                pass._units.Add((unit.Model, unit.Model.Project(input), scales, unit.Masks));
            }
            return pass;
        }
        catch
        {
            pass.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The adapter's input for N unconditioned rows, then the N pictures: [2N, E] image_embeds or [2N, positions, E]
    /// hidden states.
    /// </summary>
    private static Tensor EncoderOutput(IpAdapterUnit unit)
    {
        ClipVisionModel encoder = unit.ImageEncoder;
        int count = unit.Images.Count, size = encoder.Config.ImageSize;
        using Tensor pixels = Tensor.Allocate([count, size, size, 3]);
        for (int i = 0; i < count; i++)
        {
            using Tensor one = ClipImageProcessor.Preprocess(unit.Images[i], size);
            one.Span.CopyTo(pixels.Span[(int)(i * one.Length)..]);
        }
        if (unit.Model.TakesHiddenStates)
        {
            // [2N, positions, W]: the zero pixels' states (kept by the encoder) N times, then the pictures'.
            using Tensor zeros = encoder.ZeroPixelHiddenStates();
            using Tensor pictures = encoder.PenultimateHiddenStates(pixels);
            Tensor states = Tensor.Allocate([2 * count, pictures.Dim(1), pictures.Dim(2)]);
            for (int i = 0; i < count; i++) zeros.Span.CopyTo(states.Span[(int)(i * zeros.Length)..]);
            pictures.Span.CopyTo(states.Span[(int)pictures.Length..]);
            return states;
        }
        // [2N, E]: N rows of zeros, then the pictures' embeddings.
        using Tensor embeds = encoder.Encode(pixels);
        Tensor rows = Tensor.Allocate([2 * count, embeds.Dim(1)]);
        embeds.Span.CopyTo(rows.Span[(int)embeds.Length..]);
        return rows;
    }

    /// <summary>
    /// Each unit's condition for a UNet batch of <paramref name="batch"/> rows: with guidance, row 0 unconditioned and
    /// the rest conditioned ([uncond, cond, ...], the prompt rows' order), else every row conditioned. Masks are made
    /// for <paramref name="latentHeight"/> x <paramref name="latentWidth"/> latents of a picture
    /// <paramref name="factor"/> times their size. The caller disposes them.
    /// </summary>
    public ImagePrompt[] Prompts(int batch, bool guided, int latentHeight, int latentWidth, int factor)
    {
        var prompts = new ImagePrompt[_units.Count];
        try
        {
            for (int u = 0; u < prompts.Length; u++)
            {
                (IpAdapterModel model, Tensor projected, float[] scales, IReadOnlyList<PngImage>? masks) = _units[u];
                // [2N, T, D] read as [2, N x T, D]: diffusers' view(batch, -1, heads, head_dim) of to_k_ip([batch, N,
                // T, D]) puts a row's pictures' tokens side by side.
                int count = projected.Dim(0) / 2 * projected.Dim(1), row = (int)(projected.Length / 2);
                using Tensor tokens = Tensor.Allocate([batch, count, projected.Dim(2)]);
                for (int b = 0; b < batch; b++)
                {
                    projected.Span.Slice(guided && b == 0 ? 0 : row, row).CopyTo(tokens.Span.Slice(b * row, row));
                }
                prompts[u] = model.Condition(tokens, scales);
                if (masks is not null)
                {
                    int height = latentHeight * factor, width = latentWidth * factor, size = height * width;
                    var binary = new float[masks.Count * size];
                    for (int p = 0; p < masks.Count; p++) IpAdapterMasks.Binarize(masks[p], width, height).CopyTo(binary, p * size);
                    prompts[u].SetMasks(binary, masks.Count, height, width, ImagePrompt.LayerQueries(_unet, latentHeight, latentWidth));
                }
            }
            return prompts;
        }
        catch
        {
            foreach (ImagePrompt? prompt in prompts) prompt?.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach ((_, Tensor tokens, _, _) in _units) tokens.Dispose();
        _units.Clear();
    }
}
