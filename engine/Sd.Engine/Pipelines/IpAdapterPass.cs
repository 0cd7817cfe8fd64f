using Sd.Engine.Adapters;
using Sd.Engine.Tensors;
using Sd.Engine.Vision;

namespace Sd.Engine.Pipelines;

/// <summary>
/// A request's IP-Adapters with their pictures encoded: per unit the image tokens of the picture and of zero
/// embeddings (what the unconditioned rows of a guided batch see, as diffusers' prepare_ip_adapter_image_embeds makes
/// them). The image encoder runs once per generation; each denoising loop makes its batch's conditions from these.
/// </summary>
internal sealed class IpAdapterPass : IDisposable
{
    private readonly List<(IpAdapterModel Model, Tensor Conditioned, Tensor Unconditioned, float Scale)> _units = [];

    private IpAdapterPass()
    {
    }

    /// <summary>Encodes every unit's picture; null when there is none.</summary>
    public static IpAdapterPass? Create(IReadOnlyList<IpAdapterUnit> units, CancellationToken cancellation)
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
                using Tensor pixels = ClipImageProcessor.Preprocess(unit.Image, unit.ImageEncoder.Config.ImageSize);
                using Tensor embeds = unit.ImageEncoder.Encode(pixels);
                using Tensor zeros = Tensor.Allocate([1, embeds.Dim(1)]);
                Tensor conditioned = unit.Model.Project(embeds);
                Tensor unconditioned;
                try
                {
                    unconditioned = unit.Model.Project(zeros);
                }
                catch
                {
                    conditioned.Dispose();
                    throw;
                }
                pass._units.Add((unit.Model, conditioned, unconditioned, unit.Scale));
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
                (IpAdapterModel model, Tensor conditioned, Tensor unconditioned, float scale) = _units[u];
                int row = (int)conditioned.Length;
                using Tensor tokens = Tensor.Allocate([batch, conditioned.Dim(1), conditioned.Dim(2)]);
                for (int b = 0; b < batch; b++)
                {
                    (guided && b == 0 ? unconditioned : conditioned).Span.CopyTo(tokens.Span.Slice(b * row, row));
                }
                prompts[u] = model.Condition(tokens, scale);
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
        foreach ((_, Tensor conditioned, Tensor unconditioned, _) in _units)
        {
            conditioned.Dispose();
            unconditioned.Dispose();
        }
        _units.Clear();
    }
}
