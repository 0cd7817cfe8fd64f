using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.UNet;

/// <summary>
/// What ControlNets add to a UNet pass: one residual per skip connection of the UNet's down path and one for its mid
/// block's output, NHWC, for one (batch, height, width). ControlNets sum their scaled outputs into it (diffusers'
/// MultiControlNetModel adds them in order), and <see cref="UNet2DConditionModel"/> adds it to its skips and mid
/// output (diffusers' down_block_additional_residuals and mid_block_additional_residual). Made by
/// <see cref="ControlNetModel.CreateResiduals"/>; reused from step to step, so a sampling loop allocates nothing.
/// </summary>
public sealed unsafe class ControlResiduals : IDisposable
{
    private readonly NativeBlock[] _blocks;
    private readonly FeatureMap[] _maps;

    /// <param name="shapes">Channels, height and width of each skip connection, then of the mid block's output.</param>
    internal ControlResiduals(int batch, ReadOnlySpan<(int Channels, int Height, int Width)> shapes)
    {
        Batch = batch;
        _blocks = new NativeBlock[shapes.Length];
        _maps = new FeatureMap[shapes.Length];
        try
        {
            for (int i = 0; i < shapes.Length; i++)
            {
                (int c, int h, int w) = shapes[i];
                _blocks[i] = new NativeBlock((long)batch * h * w * c);
                _maps[i] = new FeatureMap { Data = _blocks[i].Pointer, Channels = c, Height = h, Width = w };
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Images per pass.</summary>
    public int Batch { get; }

    /// <summary>Residuals for the skip connections; the mid block's comes after them (index <see cref="SkipCount"/>).</summary>
    public int SkipCount => _maps.Length - 1;

    internal FeatureMap this[int index] => _maps[index];

    /// <summary>Sets every residual to 0 (before the ControlNets of a pass add theirs).</summary>
    public void Clear()
    {
        foreach (NativeBlock block in _blocks) block.Span.Clear();
    }

    /// <summary>A copy of residual <paramref name="index"/> (<see cref="SkipCount"/>: the mid block's), NHWC [batch, h, w, c].</summary>
    public Tensor Copy(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, SkipCount);
        FeatureMap map = _maps[index];
        Tensor copy = Tensor.Allocate([Batch, map.Height, map.Width, map.Channels]);
        _blocks[index].Span.CopyTo(copy.Span);
        return copy;
    }

    /// <summary>Whether these residuals fit a pass whose skips are <paramref name="skips"/> and whose mid output is <paramref name="mid"/>.</summary>
    internal bool Fits(int batch, ReadOnlySpan<FeatureMap> skips, FeatureMap mid)
    {
        if (batch != Batch || skips.Length != SkipCount || !SameShape(_maps[^1], mid))
        {
            return false;
        }
        for (int i = 0; i < skips.Length; i++)
        {
            if (!SameShape(_maps[i], skips[i])) return false;
        }
        return true;
    }

    /// <summary>The shapes, for error messages: "c x h x w" per residual.</summary>
    internal string Describe() => $"batch {Batch}, " + string.Join(", ", Array.ConvertAll(_maps, m => $"{m.Channels}x{m.Height}x{m.Width}"));

    /// <summary>skips[i] += residual i, mid += the mid residual (each [batch, h, w, c] as planned).</summary>
    internal void AddTo(ReadOnlySpan<FeatureMap> skips, float* mid)
    {
        for (int i = 0; i < skips.Length; i++)
        {
            Pointwise.Add(skips[i].Data, _maps[i].Data, skips[i].Data, (nint)_blocks[i].Length);
        }
        Pointwise.Add(mid, _maps[^1].Data, mid, (nint)_blocks[^1].Length);
    }

    private static bool SameShape(FeatureMap a, FeatureMap b) => a.Channels == b.Channels && a.Height == b.Height && a.Width == b.Width;

    public void Dispose()
    {
        foreach (NativeBlock? block in _blocks) block?.Dispose();
    }
}
