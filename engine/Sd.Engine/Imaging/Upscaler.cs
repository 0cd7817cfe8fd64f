using Sd.Engine.Upscaling;

namespace Sd.Engine.Imaging;

/// <summary>
/// One of AUTOMATIC1111's picture upscalers, the step its Upscaler class repeats (do_upscale): Lanczos or Nearest, a
/// Pillow resize to int(side x scale) (UpscalerLanczos, UpscalerNearest; no model), or one pass of an ESRGAN-family
/// model at the model's own scale (the caller owns and disposes the model). The default value is Lanczos.
/// </summary>
public readonly struct Upscaler
{
    private readonly bool _nearest;

    private Upscaler(EsrganUpscaler? model, bool nearest)
    {
        Model = model;
        _nearest = nearest;
    }

    public static Upscaler Lanczos => default;

    public static Upscaler Nearest => new(null, true);

    public static Upscaler Of(EsrganUpscaler model) => new(model ?? throw new ArgumentNullException(nameof(model)), false);

    /// <summary>The model run by each step, or null for Lanczos and Nearest.</summary>
    public EsrganUpscaler? Model { get; }

    /// <summary>A1111's name for it: "Lanczos", "Nearest", or the model's (its file name without extension).</summary>
    public string Name => Model?.Name ?? (_nearest ? "Nearest" : "Lanczos");

    /// <summary>The size one step makes of a <paramref name="height"/> x <paramref name="width"/> picture.</summary>
    internal (long Height, long Width) StepSize(int height, int width, double scale) =>
        Model is { } model ? ((long)height * model.Scale, (long)width * model.Scale)
        : ((long)(height * scale), (long)(width * scale)); // Python's int(): toward zero

    /// <summary>One step: RGB bytes [height, width, 3] to the <see cref="StepSize"/> (the input itself where that is its size).</summary>
    internal byte[] Step(byte[] rgb, int height, int width, double scale, CancellationToken cancellation)
    {
        if (Model is { } model)
        {
            return model.UpscaleOnce(rgb, height, width, cancellation);
        }
        (long h, long w) = StepSize(height, width, scale);
        return ImageUpscaling.Resize(rgb, height, width, (int)h, (int)w, _nearest).Picture;
    }
}
