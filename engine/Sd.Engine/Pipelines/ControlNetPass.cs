using Sd.Engine.Imaging;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Png;

namespace Sd.Engine.Pipelines;

/// <summary>
/// A request's ControlNets over one denoising pass: each unit's picture brought to the pass's size, the residuals they
/// sum into, and per step the units that run (diffusers' controlnet_keep). Under classifier-free guidance a unit in
/// guess mode, in A1111's "ControlNet is more important" mode or with a pooled ControlNet runs on the conditioned rows
/// only, the unconditioned row's residuals left at 0, as diffusers and A1111 do. A
/// ControlNet sees the scaled latents alone: with a 9-channel inpainting UNet, whose input adds the mask and the masked
/// picture's latents, it gets the input's latent channels (diffusers' StableDiffusionControlNetInpaintPipeline).
/// </summary>
internal sealed unsafe class ControlNetPass : IDisposable
{
    private readonly IReadOnlyList<ControlNetUnit> _units;
    private readonly Tensor[] _images;
    private readonly ControlResiduals _residuals;
    private readonly Tensor? _latentInput;
    private readonly Tensor? _conditionedSample;
    private readonly Tensor? _conditionedContext;
    private readonly bool _hires;

    private ControlNetPass(IReadOnlyList<ControlNetUnit> units, Tensor[] images, ControlResiduals residuals, Tensor? latentInput, Tensor? sample,
        Tensor? context, bool hires)
    {
        _hires = hires;
        _units = units;
        _images = images;
        _residuals = residuals;
        _latentInput = latentInput;
        _conditionedSample = sample;
        _conditionedContext = context;
    }

    /// <summary>
    /// The pass for a UNet input of [batch, h, w, channels] (its first <paramref name="latentChannels"/> the scaled
    /// latents) under a context of [batch, tokens, width] (guided: row 0 unconditioned); null when the request has no
    /// ControlNet. Pictures are taken to RGB and resized to the pass's pixels with Lanczos, then to [0, 1], as diffusers'
    /// control image processor does. <paramref name="hires"/>: a hires fix's second pass (<see cref="ControlNetUnit.SoftInHires"/>).
    /// </summary>
    public static ControlNetPass? Create(IReadOnlyList<ControlNetUnit> units, Tensor unetInput, int latentChannels, Tensor context, bool guided, int factor,
        bool hires = false)
    {
        if (units.Count == 0)
        {
            return null;
        }
        int batch = unetInput.Dim(0), h = unetInput.Dim(1), w = unetInput.Dim(2);
        var images = new Tensor[units.Count];
        ControlResiduals? residuals = null;
        Tensor? latentInput = null, sample = null, conditionedContext = null;
        try
        {
            for (int u = 0; u < units.Count; u++)
            {
                images[u] = units[u].Mask is { } mask
                    ? InpaintCondition(units[u].Image, mask, w * factor, h * factor)
                    : Picture(units[u].Image, w * factor, h * factor, units[u].Resize);
            }
            residuals = units[0].Model.CreateResiduals(batch, h, w);
            latentInput = unetInput.Dim(3) != latentChannels ? Tensor.Allocate([batch, h, w, latentChannels]) : null;
            bool conditionedOnly = guided && batch > 1 && IsAnyConditionedOnly(units);
            sample = conditionedOnly ? Tensor.Allocate([batch - 1, h, w, latentChannels]) : null;
            conditionedContext = conditionedOnly ? Tensor.Allocate([batch - 1, context.Dim(1), context.Dim(2)]) : null;
            return new ControlNetPass(units, images, residuals, latentInput, sample, conditionedContext, hires);
        }
        catch
        {
            foreach (Tensor? image in images) image?.Dispose();
            residuals?.Dispose();
            latentInput?.Dispose();
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

    /// <summary>The picture as RGB at <paramref name="width"/> x <paramref name="height"/> (Lanczos, by <paramref name="mode"/>), [1, H, W, 3] in [0, 1].</summary>
    private static Tensor Picture(PngImage picture, int width, int height, ResizeMode mode) =>
        ImageConversion.UnitTensor(PictureResize.Resize(ImageConversion.AsRgb(picture), width, height, mode));

    /// <summary>
    /// diffusers' make_inpaint_condition, then its tensor resize: the picture as RGB in [0, 1] with -1 where the mask
    /// (gray) is above 0.5, taken to <paramref name="width"/> x <paramref name="height"/> by nearest neighbours
    /// (PyTorch's index rule, floor(i x in / out)), [1, H, W, 3].
    /// </summary>
    internal static Tensor InpaintCondition(PngImage picture, PngImage mask, int width, int height)
    {
        byte[] rgb = ImageConversion.RgbBytes(picture), gray = ImageConversion.GrayBytes(mask);
        int sourceWidth = picture.Width, sourceHeight = picture.Height;
        Tensor tensor = Tensor.Allocate([1, height, width, 3]);
        Span<float> values = tensor.Span;
        for (int y = 0; y < height; y++)
        {
            int sy = ResizeKernels.NearestIndex(y, sourceHeight, height);
            for (int x = 0; x < width; x++)
            {
                int source = sy * sourceWidth + ResizeKernels.NearestIndex(x, sourceWidth, width), target = (y * width + x) * 3;
                bool masked = gray[source] / 255f > 0.5f;
                for (int c = 0; c < 3; c++) values[target + c] = masked ? -1f : rgb[source * 3 + c] / 255f;
            }
        }
        return tensor;
    }

    /// <summary>
    /// Runs the units active at step <paramref name="index"/> of <paramref name="count"/> on the UNet's input (or, for
    /// an inpainting UNet's wider input, on <paramref name="scaled"/>, the scaled latents of one image, in every row) and
    /// context, summing their residuals; returns them for the UNet, or null when none runs at this step.
    /// </summary>
    public ControlResiduals? Run(int index, int count, Tensor unetInput, Tensor? scaled, ReadOnlySpan<float> timestep, Tensor context,
        ReadOnlySpan<int> lengths, bool guided, CancellationToken cancellation)
    {
        bool any = false;
        Tensor input = _latentInput ?? unetInput;
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
                if (_latentInput is { } latentInput)
                {
                    FillRows(scaled ?? throw new ArgumentNullException(nameof(scaled), "an inpainting UNet's pass needs the scaled latents"), latentInput);
                }
                any = true;
            }
            if (unit.ConditionedOnly && guided && _conditionedSample is { } sample && _conditionedContext is { } conditioned)
            {
                // Rows 1.. are the conditioned ones: [uncond, cond, ...].
                input.Span[(int)(input.Length / input.Dim(0))..].CopyTo(sample.Span);
                context.Span[(int)(context.Length / context.Dim(0))..].CopyTo(conditioned.Span);
                unit.Model.Forward(sample, timestep, conditioned, lengths.IsEmpty ? lengths : lengths[1..], _images[u], unit.Scale, unit.WeightingIn(_hires),
                    _residuals, firstImage: 1, cancellation);
            }
            else
            {
                unit.Model.Forward(input, timestep, context, lengths, _images[u], unit.Scale, unit.WeightingIn(_hires), _residuals, firstImage: 0, cancellation);
            }
        }
        return any ? _residuals : null;
    }

    /// <summary>Every row of <paramref name="rows"/> [batch, h, w, c] from <paramref name="image"/> [1, h, w, c]: cat([latents] * batch).</summary>
    private static void FillRows(Tensor image, Tensor rows)
    {
        int length = (int)image.Length;
        for (int b = 0; b < rows.Dim(0); b++) image.Span.CopyTo(rows.Span.Slice(b * length, length));
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
        _latentInput?.Dispose();
        _conditionedSample?.Dispose();
        _conditionedContext?.Dispose();
    }
}
