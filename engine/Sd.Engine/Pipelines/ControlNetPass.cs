using Sd.Engine.Imaging;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Loaders.Png;

namespace Sd.Engine.Pipelines;

/// <summary>
/// A request's ControlNets over one denoising pass: each unit's picture brought to the pass's size, the residuals they
/// sum into, and per step the units that run (diffusers' controlnet_keep). Under classifier-free guidance a unit in
/// guess mode runs on the conditioned rows only, the unconditioned row's residuals left at 0, as diffusers does.
/// </summary>
internal sealed unsafe class ControlNetPass : IDisposable
{
    private readonly IReadOnlyList<ControlNetUnit> _units;
    private readonly Tensor[] _images;
    private readonly ControlResiduals _residuals;
    private readonly Tensor? _conditionedSample;
    private readonly Tensor? _conditionedContext;

    private ControlNetPass(IReadOnlyList<ControlNetUnit> units, Tensor[] images, ControlResiduals residuals, Tensor? sample, Tensor? context)
    {
        _units = units;
        _images = images;
        _residuals = residuals;
        _conditionedSample = sample;
        _conditionedContext = context;
    }

    /// <summary>
    /// The pass for a UNet input of [batch, h, w, channels] under a context of [batch, tokens, width] (guided: row 0
    /// unconditioned); null when the request has no ControlNet. Pictures are taken to RGB and resized to the pass's
    /// pixels with Lanczos, then to [0, 1], as diffusers' control image processor does.
    /// </summary>
    public static ControlNetPass? Create(IReadOnlyList<ControlNetUnit> units, Tensor unetInput, Tensor context, bool guided, int factor)
    {
        if (units.Count == 0)
        {
            return null;
        }
        int batch = unetInput.Dim(0), h = unetInput.Dim(1), w = unetInput.Dim(2);
        var images = new Tensor[units.Count];
        ControlResiduals? residuals = null;
        Tensor? sample = null, conditionedContext = null;
        try
        {
            for (int u = 0; u < units.Count; u++)
            {
                images[u] = Picture(units[u].Image, w * factor, h * factor);
            }
            residuals = units[0].Model.CreateResiduals(batch, h, w);
            bool conditionedOnly = guided && batch > 1 && IsAnyConditionedOnly(units);
            sample = conditionedOnly ? Tensor.Allocate([batch - 1, h, w, unetInput.Dim(3)]) : null;
            conditionedContext = conditionedOnly ? Tensor.Allocate([batch - 1, context.Dim(1), context.Dim(2)]) : null;
            return new ControlNetPass(units, images, residuals, sample, conditionedContext);
        }
        catch
        {
            foreach (Tensor? image in images) image?.Dispose();
            residuals?.Dispose();
            sample?.Dispose();
            conditionedContext?.Dispose();
            throw;
        }
    }

    private static bool IsAnyConditionedOnly(IReadOnlyList<ControlNetUnit> units)
    {
        foreach (ControlNetUnit unit in units)
        {
            if (unit.ConditionedOnly) return true;
        }
        return false;
    }

    /// <summary>The picture as RGB at <paramref name="width"/> x <paramref name="height"/> (Lanczos), [1, H, W, 3] in [0, 1].</summary>
    private static Tensor Picture(PngImage picture, int width, int height)
    {
        PngImage resized = PictureResize.Resize(ImageConversion.AsRgb(picture), width, height, ResizeMode.Just);
        Tensor tensor = Tensor.Allocate([1, height, width, 3]);
        byte[] pixels = resized.Pixels;
        Span<float> values = tensor.Span;
        for (int i = 0; i < pixels.Length; i++) values[i] = pixels[i] / 255f;
        return tensor;
    }

    /// <summary>
    /// Runs the units active at step <paramref name="index"/> of <paramref name="count"/> on the UNet's input and
    /// context, summing their residuals; returns them for the UNet, or null when none runs at this step.
    /// </summary>
    public ControlResiduals? Run(int index, int count, Tensor unetInput, ReadOnlySpan<float> timestep, Tensor context, ReadOnlySpan<int> lengths,
        bool guided, CancellationToken cancellation)
    {
        bool any = false;
        for (int u = 0; u < _units.Count; u++)
        {
            ControlNetUnit unit = _units[u];
            if (!unit.ActiveAt(index, count))
            {
                continue;
            }
            if (!any)
            {
                _residuals.Clear();
                any = true;
            }
            if (unit.ConditionedOnly && guided && _conditionedSample is { } sample && _conditionedContext is { } conditioned)
            {
                // Rows 1.. are the conditioned ones: [uncond, cond, ...].
                unetInput.Span[(int)(unetInput.Length / unetInput.Dim(0))..].CopyTo(sample.Span);
                context.Span[(int)(context.Length / context.Dim(0))..].CopyTo(conditioned.Span);
                unit.Model.Forward(sample, timestep, conditioned, lengths.IsEmpty ? lengths : lengths[1..], _images[u], unit.Scale, guessMode: true,
                    _residuals, firstImage: 1, cancellation);
            }
            else
            {
                unit.Model.Forward(unetInput, timestep, context, lengths, _images[u], unit.Scale, unit.GuessMode, _residuals, firstImage: 0, cancellation);
            }
        }
        return any ? _residuals : null;
    }

    /// <summary>Frees the ControlNets' activation buffers of this pass's shape.</summary>
    public void ReleaseRunBuffers()
    {
        foreach (ControlNetUnit unit in _units) unit.Model.ReleaseRunBuffers();
    }

    public void Dispose()
    {
        foreach (Tensor image in _images) image.Dispose();
        _residuals.Dispose();
        _conditionedSample?.Dispose();
        _conditionedContext?.Dispose();
    }
}
