using System.Buffers.Binary;
using System.Text;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>
/// Hostile safetensors files: each must fail with an <see cref="InvalidFileException"/> whose message names the file
/// and the problem, before any tensor byte is touched. Files are built from a valid one and then damaged.
/// </summary>
public sealed class SafetensorsCorruptionTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Assemble(string headerJson, byte[] data, ulong? declaredLength = null)
    {
        byte[] header = Encoding.UTF8.GetBytes(headerJson);
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, declaredLength ?? (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        return file;
    }

    private static byte[] Valid()
    {
        var writer = new SafetensorsWriter();
        writer.AddFloat32("a", [2, 3], [1, 2, 3, 4, 5, 6]);
        writer.AddFloat32("b", [4], [7, 8, 9, 10]);
        byte[] header = writer.BuildHeader();
        var data = new byte[40];
        return Assemble(Encoding.UTF8.GetString(header), data);
    }

    private void AssertRejected(byte[] content, string expectedWords, string name = "bad.safetensors")
    {
        string path = _dir.Write(name, content);
        var e = Assert.ThrowsAny<InvalidFileException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(name, e.Message);
        Assert.Contains(expectedWords, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    private const string TwoTensors = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]}}";

    [Fact]
    public void The_valid_baseline_opens()
    {
        string path = _dir.Write("good.safetensors", Valid());
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(2, file.Tensors.Count);
        Assert.Equal("pt", file.Metadata["format"]);
    }

    [Fact]
    public void Empty_file() => AssertRejected([], "safetensors file is empty (0 bytes)");

    [Fact]
    public void File_shorter_than_the_length_prefix() => AssertRejected([1, 0, 0], "8-byte header length");

    [Fact]
    public void Header_length_past_end_of_file() => AssertRejected(Assemble(TwoTensors, new byte[40], 5000), "past the end");

    [Fact]
    public void Huge_header_length() => AssertRejected(Assemble(TwoTensors, new byte[40], 1UL << 40), "exceeds");

    [Fact]
    public void Header_length_zero() => AssertRejected(Assemble(TwoTensors, new byte[40], 0), "at least 2 bytes");

    [Fact]
    public void Invalid_json() => AssertRejected(Assemble("{\"a\": {\"dtype\": \"F32\",", new byte[0]), "well-formed JSON");

    [Fact]
    public void Non_utf8_header() => AssertRejected(Assemble("{\"\u00ff\":1}", []).Select(b => b == 0xC3 ? (byte)0xFF : b).ToArray(), "UTF-8");

    [Fact]
    public void Unpaired_surrogate_escape_in_a_tensor_name() => AssertRejected(Assemble(
        "{\"\\ud800\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", [0]), "not valid text");

    [Fact]
    public void Unpaired_surrogate_escape_in_the_metadata() => AssertRejected(Assemble(
        "{\"__metadata__\":{\"k\":\"\\udc00\"},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", [0]),
        "'__metadata__.k' is not valid text");

    [Fact]
    public void Header_is_not_an_object() => AssertRejected(Assemble("[1,2,3]", []), "JSON object");

    [Fact]
    public void Offsets_out_of_range() =>
        AssertRejected(Assemble(TwoTensors, new byte[30]), "outside");

    [Fact]
    public void Truncated_data_area() =>
        AssertRejected(Valid()[..^8], "outside");

    [Fact]
    public void Overlapping_tensors() => AssertRejected(Assemble(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
        new byte[24]), "overlaps");

    [Fact]
    public void Gap_between_tensors() => AssertRejected(Assemble(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
        new byte[20]), "gap");

    [Fact]
    public void Trailing_bytes_after_the_last_tensor() => AssertRejected(Assemble(TwoTensors, new byte[48]), "trailing");

    [Fact]
    public void Size_does_not_match_shape() => AssertRejected(Assemble(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[3,3],\"data_offsets\":[0,24]}}", new byte[24]), "needs 36 bytes");

    [Fact]
    public void Unknown_dtype() => AssertRejected(Assemble(
        "{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", new byte[16]), "unknown dtype 'F128'");

    [Fact]
    public void Duplicate_tensor_names() => AssertRejected(Assemble(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
        new byte[8]), "names 'a' twice");

    [Fact]
    public void Negative_dimension() => AssertRejected(Assemble(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", new byte[4]), "non-negative");

    [Fact]
    public void Shape_overflowing_64_bits() => AssertRejected(Assemble(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", new byte[4]), "overflows");

    [Fact]
    public void Offsets_reversed() => AssertRejected(Assemble(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", new byte[4]), "begin <= end");

    [Fact]
    public void Missing_dtype() => AssertRejected(Assemble(
        "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]), "missing dtype");

    [Fact]
    public void Metadata_values_must_be_strings() => AssertRejected(Assemble(
        "{\"__metadata__\":{\"format\":1}}", []), "must be a string");

    [Fact]
    public void Unexpected_field_in_tensor_entry() => AssertRejected(Assemble(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":true}}", new byte[4]), "'extra'");

    [Fact]
    public void Zip_pickle_disguised_as_safetensors() =>
        Assert.IsType<UnsafeFormatException>(RecordOpen([(byte)'P', (byte)'K', 3, 4, 0, 0, 0, 0, 0, 0], "model.safetensors"));

    [Fact]
    public void Protocol_2_pickle_disguised_as_safetensors() =>
        Assert.IsType<UnsafeFormatException>(RecordOpen([0x80, 0x02, (byte)'}', (byte)'q', 0x00, (byte)'(', (byte)'X', 0x01, 0, 0, 0, (byte)'a', (byte)'.'], "model.safetensors"));

    [Theory]
    [InlineData(640)]
    [InlineData(896)]
    [InlineData(1152)]
    [InlineData(1408)]
    [InlineData(66176)]
    public void A_header_length_that_starts_like_a_pickle_marker_is_still_a_safetensors_file(int headerLength)
    {
        // Little-endian, these lengths begin 0x80 0x02..0x05, a pickle's protocol marker.
        string path = _dir.Write("padded.safetensors", Assemble(TwoTensors.PadRight(headerLength), new byte[40]));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(2, file.Tensors.Count);
    }

    [Theory]
    [InlineData("model.ckpt")]
    [InlineData("model.pt")]
    [InlineData("pytorch_model.bin")]
    public void Pickle_extensions_are_refused_with_advice(string name)
    {
        var e = Assert.IsType<UnsafeFormatException>(RecordOpen(Valid(), name));
        Assert.Contains(name, e.Message);
        Assert.Contains("safetensors", e.Message);
        Assert.Contains("arbitrary code", e.Message);
    }

    [Fact]
    public void Unreadable_dtype_is_listed_but_refused_on_use()
    {
        string path = _dir.Write("f64.safetensors", Assemble("{\"x\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", new byte[16]));
        using var file = SafetensorsFile.Open(path);
        TensorInfo x = Assert.Single(file.Tensors);
        Assert.Equal(TensorDType.F64, x.DType);
        var e = Assert.Throws<InvalidFileException>(() => file.ReadFloat32(x, new float[2]));
        Assert.Contains("f64.safetensors", e.Message);
        Assert.Contains("F64", e.Message);
    }

    [Fact]
    public void Round_trip_through_the_writer_preserves_values_and_dtypes()
    {
        var writer = new SafetensorsWriter();
        writer.AddFloat32("w", [2, 2], [1.5f, -2f, 3.25f, float.MaxValue]);
        writer.Add("h", TensorDType.F16, [3], BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)0.5f))
            .Concat(BitConverter.GetBytes((ushort)0x0001)).Concat(BitConverter.GetBytes((ushort)0xFC00)).ToArray());
        writer.Add("b", TensorDType.BF16, [1], BitConverter.GetBytes((ushort)0x3FC0));
        writer.Add("i", TensorDType.I64, [2], BitConverter.GetBytes(7L).Concat(BitConverter.GetBytes(-9L)).ToArray());
        writer.AddMetadata("note", "ünïcode");
        string path = _dir.File("rt.safetensors");
        writer.Save(path);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal("ünïcode", file.Metadata["note"]);
        Assert.True(file.TryGet("w", out TensorInfo w));
        var values = new float[4];
        file.ReadFloat32(w, values);
        Assert.Equal([1.5f, -2f, 3.25f, float.MaxValue], values);
        Assert.True(file.TryGet("h", out TensorInfo h));
        var halves = new float[3];
        file.ReadFloat32(h, halves);
        Assert.Equal([0.5f, MathF.Pow(2, -24), float.NegativeInfinity], halves);
        Assert.True(file.TryGet("b", out TensorInfo b));
        var bf = new float[1];
        file.ReadFloat32(b, bf);
        Assert.Equal(1.5f, bf[0]);
        Assert.True(file.TryGet("i", out TensorInfo i));
        Assert.Equal([7L, -9L], file.ReadInt64(i));
    }

    private Exception RecordOpen(byte[] content, string name)
    {
        string path = _dir.Write(name, content);
        return Assert.ThrowsAny<InvalidFileException>(() => SafetensorsFile.Open(path).Dispose());
    }
}
