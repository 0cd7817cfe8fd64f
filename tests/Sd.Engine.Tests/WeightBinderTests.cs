using Sd.Engine.Modules;
using Sd.Kernels.Gemm;
using Sd.Loaders;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;
using Sd.Loaders.Weights;

namespace Sd.Engine.Tests;

/// <summary>
/// Weights a module takes in their stored format are read into the load's aligned scratch by positional reads (not
/// through the file's mapping), even from an offset no float is aligned to; a 16-bit weight read that way is still
/// checked for Inf and NaN.
/// </summary>
public sealed unsafe class WeightBinderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Float32_weights_at_an_odd_offset_are_read_whole_into_aligned_scratch()
    {
        float[] w = [0.5f, -1.25f, 2f, 0.75f, -0.5f, 1f, 3f, -2f, 0.25f, 1.5f, -0.75f, 2.5f, -1f, 0.125f, 4f];
        float[] b = [0.1f, -0.2f, 0.3f];
        using SafetensorsFile file = SaveAfterOneByte("odd.safetensors", writer =>
        {
            writer.AddFloat32("weight", [3, 5], w);
            writer.AddFloat32("bias", [3], b);
        });
        using var binder = new WeightBinder(WeightsOf(file));

        float* staged = binder.Stage(["weight"], [3, 5]);
        Assert.True(file.TryGet("weight", out TensorInfo stored));
        fixed (byte* inFile = file.GetBytes(stored))
        {
            Assert.NotEqual(0, (nint)inFile % sizeof(float)); // the stored tensor is misaligned
            Assert.True(staged != (float*)inFile, "a float32 weight was read through the mapping");
        }
        Assert.Equal(0, (nint)staged % 64);
        Assert.Equal(w, new ReadOnlySpan<float>(staged, w.Length).ToArray());

        using var linear = new Linear(binder, 5, 3);
        float[] x = [1f, 2f, -1f, 0.5f, 3f, -2f, 0.25f, 1f, -0.5f, 2f];
        var y = new float[6];
        fixed (float* px = x, py = y)
        {
            linear.Forward(px, 2, 5, py, 3);
        }
        for (int row = 0; row < 2; row++)
        {
            for (int o = 0; o < 3; o++)
            {
                float expected = 0;
                for (int k = 0; k < 5; k++)
                {
                    expected = MathF.FusedMultiplyAdd(x[row * 5 + k], w[o * 5 + k], expected);
                }
                Assert.Equal(expected + b[o], y[row * 3 + o], 5);
            }
        }
    }

    [Fact]
    public void A_float16_weight_read_in_place_is_refused_when_it_holds_NaN()
    {
        ushort[] bits = [0x3C00, 0x4000, 0x7E00, 0xBC00, 0x3800, 0x0000];
        using SafetensorsFile file = HalfFile("nan.safetensors", "proj.weight", bits);
        using var binder = new WeightBinder(WeightsOf(file));

        var e = Assert.Throws<InvalidFileException>(() => new Linear(binder.Child("proj"), 3, 2, bias: false));
        Assert.Contains("proj.weight", e.Message);
        Assert.Contains("NaN", e.Message);
    }

    [Fact]
    public void A_float16_weight_stays_16_bit_and_gives_its_float_values_product()
    {
        ushort[] bits = [0x3C00, 0x4000, 0xBC00, 0x3800, 0x3400, 0xC000];
        using SafetensorsFile file = HalfFile("half.safetensors", "weight", bits);
        using var binder = new WeightBinder(WeightsOf(file));

        using var linear = new Linear(binder, 3, 2, bias: false);
        Assert.Equal(WeightFormat.F16, linear.Weight.Format);
        float[] x = [2f, -1f, 0.5f];
        var y = new float[2];
        fixed (float* px = x, py = y)
        {
            linear.Forward(px, 1, 3, py, 2);
        }
        Assert.Equal(2f * 1f - 1f * 2f + 0.5f * -1f, y[0]);
        Assert.Equal(2f * 0.5f - 1f * 0.25f + 0.5f * -2f, y[1]);
    }

    /// <summary>A mapped file whose tensors follow a one-byte tensor, so none of them starts at an aligned offset.</summary>
    private SafetensorsFile SaveAfterOneByte(string name, Action<SafetensorsWriter> add)
    {
        var writer = new SafetensorsWriter();
        writer.Add("pad", TensorDType.U8, [1], [7]);
        add(writer);
        string path = _dir.File(name);
        writer.Save(path);
        return SafetensorsFile.Open(path);
    }

    private SafetensorsFile HalfFile(string name, string tensor, ushort[] bits) =>
        SaveAfterOneByte(name, writer => writer.Add(tensor, TensorDType.F16, [2, 3], System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan())));

    /// <summary>A component's weights over one hand-made file, named as stored.</summary>
    internal static WeightSet WeightsOf(SafetensorsFile file)
    {
        var weights = new WeightSet(file.Path, [file]);
        foreach (TensorInfo tensor in file.Tensors)
        {
            weights.Add(new TensorEntry(tensor.Name, tensor.Shape, file, tensor));
        }
        return weights;
    }
}
