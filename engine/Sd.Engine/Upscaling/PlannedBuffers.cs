using Sd.Engine.Modules;
using Sd.Engine.Tensors;

namespace Sd.Engine.Upscaling;

/// <summary>
/// An upscaling network's activation memory for one input size: the convolutions' workspace and one block of
/// activations, kept until another size is planned or <see cref="Release"/> frees them.
/// </summary>
internal sealed class PlannedBuffers : IDisposable
{
    private (int Height, int Width) _planned = (-1, -1);
    private NativeBlock? _block;

    /// <summary>The workspace the convolutions plan into between <see cref="Release"/> and <see cref="Allocate"/>.</summary>
    public Workspace Workspace { get; private set; } = new();

    /// <summary>The activations' block (of the floats given to <see cref="Allocate"/>).</summary>
    public NativeBlock Block => _block ?? throw new InvalidOperationException("no activation buffers are planned");

    public bool IsPlannedFor(int height, int width) => _planned == (height, width);

    /// <summary>Allocates the workspace as planned and <paramref name="floats"/> floats of activations, for the size.</summary>
    public void Allocate(int height, int width, long floats)
    {
        Workspace.Allocate();
        _block = new NativeBlock(floats, zero: false);
        _planned = (height, width);
    }

    /// <summary>Frees both; the workspace starts empty for the next plan.</summary>
    public void Release()
    {
        _block?.Dispose();
        _block = null;
        Workspace.Dispose();
        Workspace = new Workspace();
        _planned = (-1, -1);
    }

    public void Dispose() => Release();
}
