using Sd.Engine.Tensors;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;

namespace Sd.Engine.Adapters;

/// <summary>
/// An IP-Adapter's condition for UNet passes (<see cref="IpAdapterModel.Condition"/>): every cross-attention layer's
/// key and value projections of the image tokens, [batch x tokens, 2C] rows of k | v, the values already multiplied by
/// the layer's scale. The tokens do not change while sampling, so a generation projects them once, not per step. The
/// UNet adds scale x attention(q, k, v) of them to its attention to the text in every cross-attention layer whose
/// scale is not 0. With masks (<see cref="SetMasks"/>) each of its pictures is attended to alone and weighted per query
/// by its mask, as diffusers' ip_adapter_masks.
/// </summary>
public sealed unsafe class ImagePrompt : IDisposable
{
    private readonly NativeBlock[] _keyValues;
    private readonly int[] _widths;
    private readonly float[] _scales;
    private NativeBlock[]? _masks; // per layer: [Pictures, queries] weights
    private int[]? _maskQueries;

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

    /// <summary>Image tokens per image (of all its pictures, side by side).</summary>
    public int Tokens { get; }

    /// <summary>The pictures whose tokens it holds: 1 until <see cref="SetMasks"/> says how many.</summary>
    public int Pictures { get; private set; } = 1;

    /// <summary>Whether each picture is attended to alone, weighted by its mask.</summary>
    public bool IsMasked => _masks is not null;

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

    /// <summary>
    /// The number of queries (h x w at its level) of each cross-attention layer of a UNet of <paramref name="config"/>
    /// run on <paramref name="latentHeight"/> x <paramref name="latentWidth"/> latents, in diffusers' processor order.
    /// </summary>
    public static int[] LayerQueries(UNetConfig config, int latentHeight, int latentWidth)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(latentHeight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(latentWidth, 1);
        List<CrossAttentionLayer> layers = DiffusersLayout.CrossAttentionLayers(config);
        var queries = new int[layers.Count];
        for (int i = 0; i < queries.Length; i++)
        {
            int h = latentHeight, w = latentWidth;
            for (int level = 0; level < layers[i].Level; level++) (h, w) = ((h + 1) / 2, (w + 1) / 2); // stride-2 downsamplers
            queries[i] = h * w;
        }
        return queries;
    }

    /// <summary>
    /// Restricts each picture to its mask: <paramref name="masks"/> [pictures, height, width] (binary, at the output
    /// size: <see cref="IpAdapterMasks.Binarize"/>), read by each layer as <see cref="IpAdapterMasks.Downsample"/>
    /// weights for its <paramref name="layerQueries"/> (<see cref="LayerQueries"/>). The UNet must then run at the
    /// latent size those queries were made for. Set once.
    /// </summary>
    public void SetMasks(ReadOnlySpan<float> masks, int pictures, int height, int width, ReadOnlySpan<int> layerQueries)
    {
        if (_masks is not null)
        {
            throw new InvalidOperationException("the image prompt's masks are set already");
        }
        if (pictures < 1 || Tokens % pictures != 0 || height < 1 || width < 1 || masks.Length != (long)pictures * height * width)
        {
            throw new ArgumentException($"masks of {pictures} pictures at {width}x{height} ({masks.Length} values) do not fit an image prompt of {Tokens} tokens " +
                $"(as many per picture; {(long)pictures * height * width} values)", nameof(masks));
        }
        if (layerQueries.Length != _widths.Length)
        {
            throw new ArgumentException($"the image prompt has {_widths.Length} cross-attention layers, got {layerQueries.Length} query counts", nameof(layerQueries));
        }
        long size = (long)height * width;
        var blocks = new NativeBlock[_widths.Length];
        try
        {
            for (int layer = 0; layer < blocks.Length; layer++)
            {
                int queries = layerQueries[layer];
                var weights = new Span<float>((blocks[layer] = new NativeBlock((long)pictures * queries, zero: false)).Pointer, pictures * queries);
                // Layers at one level read the same grid: downsampled once, copied to the others.
                if (layerQueries[..layer].IndexOf(queries) is var same and >= 0)
                {
                    new Span<float>(blocks[same].Pointer, weights.Length).CopyTo(weights);
                    continue;
                }
                for (int p = 0; p < pictures; p++)
                {
                    IpAdapterMasks.Downsample(masks.Slice((int)(p * size), (int)size), height, width, queries).CopyTo(weights[(p * queries)..]);
                }
            }
        }
        catch
        {
            foreach (NativeBlock? block in blocks) block?.Dispose();
            throw;
        }
        _masks = blocks;
        _maskQueries = layerQueries.ToArray();
        Pictures = pictures;
    }

    /// <summary>Layer <paramref name="layer"/>'s [Pictures, queries] mask weights, checked against the UNet's <paramref name="queries"/>.</summary>
    internal float* MaskWeights(int layer, int queries) =>
        _maskQueries![layer] == queries ? _masks![layer].Pointer
            : throw new InvalidOperationException($"the image prompt's masks were made for {_maskQueries[layer]} queries in cross-attention layer {layer}, " +
                $"the UNet runs {queries}: they are for another latent size");

    public void Dispose()
    {
        foreach (NativeBlock block in _keyValues) block.Dispose();
        foreach (NativeBlock block in _masks ?? []) block.Dispose();
    }
}
