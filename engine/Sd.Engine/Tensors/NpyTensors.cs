using Sd.Kernels.Layout;
using Sd.Loaders;
using Sd.Loaders.Npy;

namespace Sd.Engine.Tensors;

/// <summary>
/// The .npy boundary: files hold NCHW (as PyTorch and the fixtures do), the engine holds NHWC. Conversion happens
/// here and nowhere else.
/// </summary>
public static unsafe class NpyTensors
{
    /// <summary>Reads a float32/float16 [N,C,H,W] array into an NHWC tensor of shape [N,H,W,C].</summary>
    public static Tensor ReadNchwAsNhwc(string path)
    {
        float[] nchw = NpyFile.ReadFloat32(path, out int[] shape);
        if (shape.Length != 4)
        {
            throw new InvalidFileException(path, $"expected a 4-D [N,C,H,W] array, found shape {NpyArray.FormatShape(shape)}");
        }
        if (nchw.Length == 0)
        {
            // Also keeps h * w below from overflowing: with no zero dimension the product fits the array's length.
            throw new InvalidFileException(path, $"holds no values (shape {NpyArray.FormatShape(shape)})");
        }
        int n = shape[0], c = shape[1], h = shape[2], w = shape[3];
        Tensor tensor = Tensor.Allocate([n, h, w, c]);
        fixed (float* src = nchw)
        {
            TransposeKernels.NchwToNhwc(src, tensor.Data, n, c, h * w);
        }
        return tensor;
    }

    /// <summary>Writes an NHWC tensor [N,H,W,C] as a float32 [N,C,H,W] .npy file (atomically).</summary>
    public static void WriteNhwcAsNchw(Tensor tensor, string path) => NpyFile.Write(path, AsNchwArray(tensor));

    /// <summary>An NHWC tensor [N,H,W,C] as a float32 [N,C,H,W] array, ready to write.</summary>
    public static NpyArray AsNchwArray(Tensor tensor) =>
        NpyArray.FromFloat32(ToNchw(tensor), [tensor.Dim(0), tensor.Dim(3), tensor.Dim(1), tensor.Dim(2)]);

    /// <summary>An NHWC tensor [N,H,W,C] as a managed NCHW array, PyTorch's order.</summary>
    public static float[] ToNchw(Tensor tensor)
    {
        if (tensor.Rank != 4)
        {
            throw new ArgumentException($"expected an NHWC tensor of rank 4, got {tensor}", nameof(tensor));
        }
        int n = tensor.Dim(0), h = tensor.Dim(1), w = tensor.Dim(2), c = tensor.Dim(3);
        var nchw = new float[tensor.Length];
        fixed (float* dst = nchw)
        {
            TransposeKernels.NhwcToNchw(tensor.Data, dst, n, c, h * w);
        }
        return nchw;
    }
}
