using Sd.Engine.Adapters;
using Sd.Engine.Tensors;
using Sd.Engine.Vision;
using Sd.Loaders.Config;

namespace Sd.Engine.Pipelines;

/// <summary>
/// A request's IP-Adapters with their pictures encoded: per unit the image tokens [2, T, D] of what the unconditioned
/// rows of a guided batch see (row 0) and of the picture (row 1), as diffusers' encode_image and
/// prepare_ip_adapter_image_embeds make them: zeros_like(image_embeds) for the plain adapter, the encoding of
/// zeros_like(pixel_values) for Plus and full-face, which take the encoder's penultimate hidden states (the encoder
/// keeps those of zero pixels). The image encoder runs once per generation; each denoising loop makes its batch's
/// conditions from these.
/// </summary>
internal sealed class IpAdapterPass : IDisposable
{
    private readonly List<(IpAdapterModel Model, Tensor Tokens, float[] LayerScales)> _units = [];

    private IpAdapterPass()
    {
    }

    /// <summary>Encodes every unit's picture and sets its scales for a UNet of <paramref name="unet"/>; null when there is none.</summary>
    public static IpAdapterPass? Create(IReadOnlyList<IpAdapterUnit> units, UNetConfig unet, CancellationToken cancellation)
    {
        if (units.Count == 0)
        {
            return null;
        }
        var pass = new IpAdapterPass();
        try
        {
            foreach (IpAdapterUnit unit in units)
            {
                cancellation.ThrowIfCancellationRequested();
                using Tensor input = EncoderOutput(unit);
                float[] scales = unit.LayerScales(unet);
                pass._units.Add((unit.Model, unit.Model.Project(input), scales));
            }
            return pass;
        }
        catch
        {
            pass.Dispose();
            throw;
        }
    }

    /// <summary>The adapter's input for [unconditioned, picture]: [2, E] image_embeds or [2, positions, E] hidden states.</summary>
    private static Tensor EncoderOutput(IpAdapterUnit unit)
    {
        ClipVisionModel encoder = unit.ImageEncoder;
        using Tensor pixels = ClipImageProcessor.Preprocess(unit.Image, encoder.Config.ImageSize);
        if (unit.Model.TakesHiddenStates)
        {
            // [2, positions, W]: the zero pixels' states (kept by the encoder), then the picture's.
            using Tensor zeros = encoder.ZeroPixelHiddenStates();
            using Tensor picture = encoder.PenultimateHiddenStates(pixels);
            Tensor both = Tensor.Allocate([2, picture.Dim(1), picture.Dim(2)]);
            zeros.Span.CopyTo(both.Span);
            picture.Span.CopyTo(both.Span[(int)picture.Length..]);
            return both;
        }
        using Tensor embeds = encoder.Encode(pixels);
        Tensor rows = Tensor.Allocate([2, embeds.Dim(1)]);
        embeds.Span.CopyTo(rows.Span[(int)embeds.Length..]);
        return rows;
    }

    /// <summary>
    /// Each unit's condition for a UNet batch of <paramref name="batch"/> rows: with guidance, row 0 unconditioned and
    /// the rest conditioned ([uncond, cond, ...], the prompt rows' order), else every row conditioned. The caller
    /// disposes them.
    /// </summary>
    public ImagePrompt[] Prompts(int batch, bool guided)
    {
        var prompts = new ImagePrompt[_units.Count];
        try
        {
            for (int u = 0; u < prompts.Length; u++)
            {
                (IpAdapterModel model, Tensor both, float[] scales) = _units[u];
                int row = (int)(both.Length / 2);
                using Tensor tokens = Tensor.Allocate([batch, both.Dim(1), both.Dim(2)]);
                for (int b = 0; b < batch; b++)
                {
                    both.Span.Slice(guided && b == 0 ? 0 : row, row).CopyTo(tokens.Span.Slice(b * row, row));
                }
                prompts[u] = model.Condition(tokens, scales);
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
        foreach ((_, Tensor tokens, _) in _units) tokens.Dispose();
        _units.Clear();
    }
}
