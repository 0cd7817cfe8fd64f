using Sd.Engine.Tensors;

namespace Sd.Engine.Adapters;

/// <summary>
/// An IP-Adapter's condition for UNet passes (<see cref="IpAdapterModel.Condition"/>): every cross-attention layer's
/// key and value projections of the image tokens, [batch x tokens, 2C] rows of k | v, the values already multiplied by
/// the layer's scale. The tokens do not change while sampling, so a generation projects them once, not per step. The
/// UNet adds scale x attention(q, k, v) of them to its attention to the text in every cross-attention layer whose
/// scale is not 0.
/// </summary>
public sealed unsafe class ImagePrompt : IDisposable
{
    private readonly NativeBlock[] _keyValues;
    private readonly int[] _widths;
    private readonly float[] _scales;

    internal ImagePrompt(NativeBlock[] keyValues, int[] widths, int batch, int tokens, float[] scales)
    {
        _keyValues = keyValues;
        _widths = widths;
        _scales = scales;
        Batch = batch;
        Tokens = tokens;
    }

    /// <summary>Images it conditions: the UNet batch it fits.</summary>
    public int Batch { get; }

    /// <summary>Image tokens per image.</summary>
    public int Tokens { get; }

    /// <summary>The scale of each cross-attention layer, in diffusers' processor order.</summary>
    public ReadOnlySpan<float> LayerScales => _scales;

    /// <summary>The width of each cross-attention layer it was made for, in diffusers' processor order.</summary>
    public ReadOnlySpan<int> LayerWidths => _widths;

    /// <summary>
    /// Why an IP-Adapter whose cross-attention layers have <paramref name="adapter"/> widths does not fit a UNet whose
    /// layers have <paramref name="unet"/> widths (both in diffusers' processor order); null when it fits.
    /// </summary>
    internal static string? LayerMisfit(ReadOnlySpan<int> adapter, ReadOnlySpan<int> unet) =>
        adapter.SequenceEqual(unet) ? null
            : $"it has {adapter.Length} cross-attention layers of widths [{string.Join(", ", adapter.ToArray())}] where the UNet has {unet.Length} of [{string.Join(", ", unet.ToArray())}]";

    /// <summary>Layer <paramref name="layer"/>'s [Batch x Tokens, 2C] k | v rows.</summary>
    internal float* KeyValues(int layer) => _keyValues[layer].Pointer;

    public void Dispose()
    {
        foreach (NativeBlock block in _keyValues) block.Dispose();
    }
}
