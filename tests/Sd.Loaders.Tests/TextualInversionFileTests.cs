using System.Runtime.InteropServices;
using Sd.Loaders.Embeddings;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>
/// Textual-inversion files as diffusers (the key is the token) and A1111/kohya (emb_params, called by the file name)
/// write them, F32 or 16-bit; anything else (SDXL pairs, several tensors, odd shapes or dtypes, NaN, pickles) is
/// refused naming the file and tensor.
/// </summary>
public sealed class TextualInversionFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Write(string fileName, params (string Name, TensorDType DType, long[] Shape, float[] Values)[] tensors)
    {
        var writer = new SafetensorsWriter();
        foreach ((string name, TensorDType dtype, long[] shape, float[] values) in tensors)
        {
            byte[] bytes = dtype switch
            {
                TensorDType.F32 => MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
                TensorDType.F16 => MemoryMarshal.AsBytes(Array.ConvertAll(values, v => (Half)v).AsSpan()).ToArray(),
                TensorDType.I32 => MemoryMarshal.AsBytes(Array.ConvertAll(values, v => (int)v).AsSpan()).ToArray(),
                _ => throw new ArgumentOutOfRangeException(nameof(tensors)),
            };
            writer.Add(name, dtype, shape, bytes);
        }
        string path = _dir.File(fileName);
        writer.Save(path);
        return path;
    }

    private static float[] Ramp(int count) => Enumerable.Range(0, count).Select(i => (i - count / 2) * 0.125f).ToArray();

    [Fact]
    public void A_diffusers_file_is_called_by_its_key()
    {
        float[] vector = Ramp(8);
        string path = Write("learned_embeds.safetensors", ("<cat-toy>", TensorDType.F32, [8], vector));
        TextualInversion inversion = TextualInversionFile.Read(path);
        Assert.Equal("<cat-toy>", inversion.Token);
        Assert.Equal((1, 8), (inversion.Count, inversion.Width));
        Assert.Equal(vector, inversion.Vectors);
        Assert.Equal(path, inversion.Path);
    }

    [Fact]
    public void An_a1111_file_is_called_by_its_file_name_and_16_bit_vectors_widen_exactly()
    {
        float[] vectors = Ramp(3 * 8); // multiples of 1/8: exact in float16
        string path = Write("EasyNegative.safetensors", ("emb_params", TensorDType.F16, [3, 8], vectors));
        TextualInversion inversion = TextualInversionFile.Read(path);
        Assert.Equal("EasyNegative", inversion.Token);
        Assert.Equal((3, 8), (inversion.Count, inversion.Width));
        Assert.Equal(vectors, inversion.Vectors);
        Assert.Equal("bad-hands", TextualInversionFile.Read(path, "bad-hands").Token);
        Assert.Equal("<cat-toy>", TextualInversionFile.Read(Write("learned_embeds.safetensors", ("<x>", TensorDType.F32, [8], Ramp(8))), "<cat-toy>").Token);
    }

    [Fact]
    public void Files_that_are_no_sd_embedding_are_refused_by_name()
    {
        string sdxl = Write("xl.safetensors", ("clip_l", TensorDType.F32, [2, 8], Ramp(16)), ("clip_g", TensorDType.F32, [2, 12], Ramp(24)));
        Assert.Contains("SDXL textual inversion", Refused(sdxl));
        string two = Write("two.safetensors", ("a", TensorDType.F32, [8], Ramp(8)), ("b", TensorDType.F32, [8], Ramp(8)));
        Assert.Contains("holds 2 tensors ('a', 'b')", Refused(two));
        Assert.Contains("holds no tensor", Refused(Write("none.safetensors")));
        Assert.Contains("'emb_params' has dtype I32; expected F32, F16 or BF16",
            Refused(Write("ints.safetensors", ("emb_params", TensorDType.I32, [2, 4], Ramp(8)))));
        Assert.Contains("'emb_params' has shape [1, 2, 4]; expected [width] or [vectors, width]",
            Refused(Write("cube.safetensors", ("emb_params", TensorDType.F32, [1, 2, 4], Ramp(8)))));
        Assert.Contains("has shape [0, 8]", Refused(Write("empty.safetensors", ("emb_params", TensorDType.F32, [0, 8], []))));
        float[] nan = Ramp(16);
        nan[11] = float.NaN;
        Assert.Contains("holds NaN at vector 1, element 3; embeddings must be finite",
            Refused(Write("nan.safetensors", ("emb_params", TensorDType.F32, [2, 8], nan))));
        File.WriteAllBytes(_dir.File("neg.pt"), [0x80, 0x02, 0x7d]);
        Assert.Throws<UnsafeFormatException>(() => TextualInversionFile.Read(_dir.File("neg.pt")));
        string good = Write("good.safetensors", ("emb_params", TensorDType.F32, [8], Ramp(8)));
        Assert.Throws<ArgumentException>(() => TextualInversionFile.Read(good, " "));
    }

    private static string Refused(string path)
    {
        var e = Assert.Throws<InvalidFileException>(() => TextualInversionFile.Read(path));
        Assert.Equal(path, e.FilePath);
        return e.Message;
    }
}
