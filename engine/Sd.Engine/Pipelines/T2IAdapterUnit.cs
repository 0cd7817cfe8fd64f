using Sd.Engine.Adapters;
using Sd.Engine.Imaging;
using Sd.Engine.Tensors;
using Sd.Loaders.Png;

namespace Sd.Engine.Pipelines;

/// <summary>
/// One T2I-Adapter of a request: the loaded model, the picture that steers it (edges, depth, a sketch...: the
/// preprocessed picture), and how strongly. Its features are made once per pass, not per step.
/// Reference: diffusers StableDiffusionAdapterPipeline (0.27) arguments image and adapter_conditioning_scale (one per
/// adapter with a MultiAdapter, whose features add up).
/// </summary>
public sealed record T2IAdapterUnit(T2IAdapterModel Model, PngImage Image)
{
    /// <summary>What the features are multiplied by (adapter_conditioning_scale; 0 turns the adapter off).</summary>
    public float Scale { get; init; } = 1f;

    /// <summary>
    /// The features of every unit for a pass of <paramref name="width"/> x <paramref name="height"/> pixels, summed
    /// (null when there is no unit). Each picture is taken to the adapter's channels (RGB, or gray as Pillow's
    /// convert("L")), resized with Lanczos and brought to [0, 1], as diffusers' _preprocess_adapter_image.
    /// </summary>
    internal static AdapterFeatures? Run(IReadOnlyList<T2IAdapterUnit> units, int width, int height)
    {
        AdapterFeatures? sum = null;
        try
        {
            foreach (T2IAdapterUnit unit in units)
            {
                using Tensor picture = Picture(unit.Image, unit.Model.Config.InChannels, width, height);
                AdapterFeatures features = unit.Model.Forward(picture, unit.Scale);
                if (sum is null)
                {
                    sum = features;
                    continue;
                }
                using (features) sum.Add(features);
            }
            return sum;
        }
        catch
        {
            sum?.Dispose();
            throw;
        }
    }

    private static Tensor Picture(PngImage image, int channels, int width, int height) =>
        ImageConversion.UnitTensor(PictureResize.Resize(channels == 1 ? ImageConversion.AsGray(image) : ImageConversion.AsRgb(image), width, height, ResizeMode.Just));
}
