using System.Buffers.Binary;
using System.Text;
using Sd.Loaders.Npy;

namespace Sd.Loaders.Tests;

public sealed class NpyFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sd-npy-tests-" + Guid.NewGuid().ToString("N"));

    public NpyFileTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // ---- round trips ----

    [Fact]
    public void Float32_RoundTrips_BitExact()
    {
        float[] values = [0f, -0f, 1.5f, -3.25e10f, float.Epsilon, float.MaxValue, float.PositiveInfinity, float.NaN];
        var read = RoundTrip(NpyArray.FromFloat32(values, [2, 4]));

        Assert.Equal(NpyDType.Float32, read.DType);
        Assert.Equal([2, 4], read.Shape);
        Assert.Equal(8, read.ElementCount);
        Assert.Equal(Bits(values), Bits(read.ToFloat32()));
    }

    [Fact]
    public void Int64_RoundTrips()
    {
        long[] values = [long.MinValue, -1, 0, 1, long.MaxValue, 49407];
        var read = RoundTrip(NpyArray.FromInt64(values, [6]));

        Assert.Equal(NpyDType.Int64, read.DType);
        Assert.Equal([6], read.Shape);
        Assert.Equal(values, read.ToInt64());
    }

    [Fact]
    public void Int32_RoundTrips_AndWidensToInt64()
    {
        int[] values = [int.MinValue, -7, 0, 42, int.MaxValue, 3];
        var read = RoundTrip(NpyArray.FromInt32(values, [3, 2, 1]));

        Assert.Equal(NpyDType.Int32, read.DType);
        Assert.Equal([3, 2, 1], read.Shape);
        Assert.Equal(values, read.ToInt32());
        Assert.Equal(Array.ConvertAll(values, v => (long)v), read.ToInt64());
    }

    [Fact]
    public void Typed_reads_widen_their_dtypes_and_refuse_others_naming_the_file()
    {
        string half = Path.Combine(_dir, "half.npy"), ints = Path.Combine(_dir, "ints.npy");
        NpyFile.Write(half, NpyArray.FromFloat16([(Half)0.5f, (Half)(-2f)], [1, 2]));
        NpyFile.Write(ints, NpyArray.FromInt32([7, 8, 9], [3]));

        Assert.Equal([0.5f, -2f], NpyFile.ReadFloat32(half, out int[] halfShape));
        Assert.Equal([1, 2], halfShape);
        Assert.Equal([7L, 8L, 9L], NpyFile.ReadInt64(ints, out int[] intShape));
        Assert.Equal([3], intShape);
        var floats = Assert.Throws<InvalidFileException>(() => NpyFile.ReadFloat32(ints, out _));
        Assert.Equal($"{ints}: expected float32 or float16 data, found int32", floats.Message);
        var ids = Assert.Throws<InvalidFileException>(() => NpyFile.ReadInt64(half, out _));
        Assert.Equal($"{half}: expected int64 or int32 data, found float16", ids.Message);
    }

    [Fact]
    public void Float16_RoundTrips_IncludingSubnormalsInfinitiesAndNaNPayloads()
    {
        // Smallest and largest subnormal, smallest normal, max, ±inf, -0, a quiet NaN with payload, a signalling NaN.
        ushort[] bits = [0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x8000, 0x7E01, 0xFD55, 0x3C00];
        Half[] values = Array.ConvertAll(bits, b => BitConverter.UInt16BitsToHalf(b));
        var read = RoundTrip(NpyArray.FromFloat16(values, [2, 5]));

        Assert.Equal(NpyDType.Float16, read.DType);
        Assert.Equal(bits, Array.ConvertAll(read.ToFloat16(), BitConverter.HalfToUInt16Bits));
        float[] widened = read.ToFloat32();
        Assert.Equal(MathF.ScaleB(1, -24), widened[0]);
        Assert.Equal(1023 * MathF.ScaleB(1, -24), widened[1]);
        Assert.Equal(MathF.ScaleB(1, -14), widened[2]);
        Assert.Equal(65504f, widened[3]);
        Assert.Equal(float.PositiveInfinity, widened[4]);
        Assert.Equal(float.NegativeInfinity, widened[5]);
        Assert.Equal(0x80000000u, BitConverter.SingleToUInt32Bits(widened[6]));
        Assert.True(float.IsNaN(widened[7]) && float.IsNaN(widened[8]));
        Assert.Equal(1f, widened[9]);
    }

    [Fact]
    public void ZeroDimensionalScalars_RoundTripForEveryDType()
    {
        Assert.Equal([2.5f], RoundTrip(NpyArray.FromFloat32([2.5f], [])).ToFloat32());
        Assert.Equal([(Half)0.5f], RoundTrip(NpyArray.FromFloat16([(Half)0.5f], [])).ToFloat16());
        Assert.Equal([-9L], RoundTrip(NpyArray.FromInt64([-9L], [])).ToInt64());
        var int32 = RoundTrip(NpyArray.FromInt32([77], []));
        Assert.Equal([77], int32.ToInt32());
        Assert.Empty(int32.Shape);
        Assert.Equal(0, int32.Rank);
        Assert.Equal(1, int32.ElementCount);
    }

    [Fact]
    public void EmptyArrays_RoundTrip()
    {
        var oneD = RoundTrip(NpyArray.FromFloat32([], [0]));
        Assert.Equal([0], oneD.Shape);
        Assert.Equal(0, oneD.ElementCount);
        Assert.Empty(oneD.ToFloat32());

        var threeD = RoundTrip(NpyArray.FromInt64([], [3, 0, 2]));
        Assert.Equal([3, 0, 2], threeD.Shape);
        Assert.Empty(threeD.Data);
    }

    [Fact]
    public void EmptyArray_WithHugeOtherDimensions_IsStillEmpty()
    {
        var read = RoundTrip(new NpyArray(NpyDType.Float32, [int.MaxValue, 0, int.MaxValue], []));
        Assert.Equal([int.MaxValue, 0, int.MaxValue], read.Shape);
        Assert.Equal(0, read.ElementCount);
    }

    [Fact]
    public void Write_OverwritesAtomically_AndLeavesNoTemporaryFiles()
    {
        string path = Path.Combine(_dir, "out.npy");
        File.WriteAllText(path, "old contents");

        NpyFile.Write(path, NpyArray.FromInt32([1, 2, 3], [3]));

        Assert.Equal([1, 2, 3], NpyFile.Read(path).ToInt32());
        Assert.Equal([path], Directory.GetFiles(_dir));
    }

    [Fact]
    public void Write_IntoMissingDirectory_Throws_AndCreatesNothing()
    {
        string path = Path.Combine(_dir, "missing", "out.npy");
        Assert.Throws<DirectoryNotFoundException>(() => NpyFile.Write(path, NpyArray.FromInt32([1], [1])));
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void Read_FromNonSeekableStream_Works()
    {
        var buffer = new MemoryStream();
        NpyFile.Write(buffer, NpyArray.FromFloat32([1f, 2f, 3f, 4f], [2, 2]));

        var read = NpyFile.Read(new NonSeekableStream(buffer.ToArray()), "pipe.npy");

        Assert.Equal([1f, 2f, 3f, 4f], read.ToFloat32());
    }

    // ---- header bytes: exactly what numpy writes ----

    [Fact]
    public void Writer_Header_MatchesNumpyByteForByte()
    {
        // numpy >= 1.24: np.save(f, np.zeros((2, 3), np.float32)) — header length 0x76, preamble 128 bytes.
        string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        byte[] expected = [0x93, .. "NUMPY"u8, 1, 0, 0x76, 0, .. Encoding.ASCII.GetBytes(dict.PadRight(117)), (byte)'\n'];
        Assert.Equal(128, expected.Length);

        byte[] file = WriteToBytes(NpyArray.FromFloat32(new float[6], [2, 3]));

        Assert.Equal(128 + 24, file.Length);
        Assert.Equal(expected, file[..128]);
    }

    [Fact]
    public void Writer_Header_ForScalar_HasNoGrowthPadding()
    {
        byte[] file = WriteToBytes(NpyArray.FromInt64([5], []));

        Assert.Equal(128 + 8, file.Length);
        string header = Encoding.ASCII.GetString(file, 10, 118);
        Assert.Equal("{'descr': '<i8', 'fortran_order': False, 'shape': (), }".PadRight(117) + "\n", header);
    }

    [Fact]
    public void Writer_Header_ReservesRoomToGrowAxisZero_LikeNumpy()
    {
        // 98 characters of dict fit a 128-byte preamble, but numpy adds 21 - len("0") = 20 spaces first, so the
        // preamble becomes 192 bytes.
        byte[] file = WriteToBytes(new NpyArray(NpyDType.Float32, [0, 1000000000, 1000000000, 1000000000, 1000], []));

        Assert.Equal(192, file.Length);
        Assert.Equal(182, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(8)));
    }

    [Fact]
    public void Writer_Header_AlreadyAligned_GetsAFull64BytesOfPadding_LikeNumpy()
    {
        // dict + growth padding is 117 characters, so 10 + 117 + '\n' = 128 is already aligned; numpy still pads 64.
        byte[] file = WriteToBytes(new NpyArray(NpyDType.Float32, [0, 1000000000, 1000000000, 1000000000, 100], []));

        Assert.Equal(192, file.Length);
        Assert.Equal((byte)'\n', file[^1]);
        Assert.Equal((byte)' ', file[^65]);
    }

    // ---- hand-made headers numpy.save would not write but numpy.load accepts ----

    [Fact]
    public void Read_Version2Header()
    {
        string path = WriteFile("v2.npy", Npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n", Int32s(7, -8), major: 2));
        var read = NpyFile.Read(path);
        Assert.Equal([7, -8], read.ToInt32());
    }

    [Fact]
    public void Read_Version3Header()
    {
        string path = WriteFile("v3.npy", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }\n", Floats(6f), major: 3));
        var read = NpyFile.Read(path);
        Assert.Equal([1, 1], read.Shape);
        Assert.Equal([6f], read.ToFloat32());
    }

    [Fact]
    public void Read_AcceptsAnyKeyOrder_Whitespace_DoubleQuotes_AndTrailingCommas()
    {
        string header = " { \"shape\" : ( 2 , 3 , ) ,\t'fortran_order':False,'descr':\"<f2\"}  \n";
        string path = WriteFile("loose.npy", Npy(header, new byte[12]));
        var read = NpyFile.Read(path);
        Assert.Equal(NpyDType.Float16, read.DType);
        Assert.Equal([2, 3], read.Shape);
    }

    [Fact]
    public void Read_OneTupleAndNoTrailingCommaAfterLastEntry()
    {
        string path = WriteFile("one.npy", Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,)}", Int64s(3)));
        Assert.Equal([3L], NpyFile.Read(path).ToInt64());
    }

    // ---- corrupt or unsupported input ----

    [Fact]
    public void Corrupt_BadMagic() =>
        AssertInvalid(WriteFile("magic.npy", [0x93, .. "NUMPZ"u8, 1, 0, 0x76, 0]), "not a .npy file", "bad magic");

    [Fact]
    public void Corrupt_EmptyFile() => AssertInvalid(WriteFile("empty.npy", []), ".npy file is empty (0 bytes)");

    [Fact]
    public void Corrupt_TruncatedInsideHeaderLength()
    {
        byte[] bytes = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", Floats(1f));
        AssertInvalid(WriteFile("cut.npy", bytes[..9]), "truncated header");
    }

    [Fact]
    public void Corrupt_TruncatedInsideHeader()
    {
        byte[] bytes = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", Floats(1f));
        AssertInvalid(WriteFile("cut.npy", bytes[..40]), "truncated header", "header length");
    }

    [Fact]
    public void Corrupt_HeaderLengthPastEndOfFile_NonSeekable()
    {
        byte[] bytes = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", Floats(1f));
        var ex = Assert.Throws<InvalidFileException>(() => NpyFile.Read(new NonSeekableStream(bytes[..40]), "pipe.npy"));
        Assert.Contains("pipe.npy", ex.Message);
        Assert.Contains("truncated header", ex.Message);
    }

    [Fact]
    public void Corrupt_HeaderLengthAboveLimit()
    {
        byte[] bytes = [0x93, .. "NUMPY"u8, 2, 0, 0, 0, 0, 0x80];
        AssertInvalid(WriteFile("huge-header.npy", bytes), "header length 2147483648", "limit");
    }

    [Fact]
    public void Corrupt_UnsupportedVersion() =>
        AssertInvalid(WriteFile("v4.npy", Npy("{}", [], major: 4)), "version 4.0");

    [Fact]
    public void Unsupported_Float64() =>
        AssertInvalid(WriteFile("f8.npy", Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", new byte[8])),
            "unsupported dtype '<f8'", "<f4, <f2, <i8, <i4");

    [Fact]
    public void Unsupported_BigEndian() =>
        AssertInvalid(WriteFile("be.npy", Npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", new byte[4])),
            "big-endian", "'>f4'");

    [Fact]
    public void Unsupported_StructuredDType() =>
        AssertInvalid(WriteFile("rec.npy", Npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", new byte[4])),
            "malformed header", "expected a quoted string");

    [Fact]
    public void Unsupported_FortranOrder() =>
        AssertInvalid(WriteFile("fortran.npy", Npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", new byte[16])),
            "fortran_order", "C order");

    [Theory]
    [InlineData("{'descr': '<f4' 'fortran_order': False, 'shape': (1,), }", "expected ','")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), ", "expected a quoted string")]
    [InlineData("{'descr': '<f4', 'fortran_order': false, 'shape': (1,), }", "expected True or False")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': [1], }", "expected '('")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } x", "unexpected text")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1), }", "not a tuple")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1.0,), }", "expected ','")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, }", "missing key 'shape'")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "unexpected key 'extra'")]
    [InlineData("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "duplicate key 'descr'")]
    [InlineData("{'descr' '<f4', 'fortran_order': False, 'shape': (1,), }", "expected ':'")]
    [InlineData("{'descr': '<f4\\x', 'fortran_order': False, 'shape': (1,), }", "escape")]
    public void Corrupt_MalformedDictionary(string header, string problem) =>
        AssertInvalid(WriteFile("dict.npy", Npy(header, new byte[4])), "malformed header", problem);

    [Fact]
    public void Corrupt_NonAsciiVersion1Header() =>
        AssertInvalid(WriteFile("latin.npy", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'é': 1}", new byte[4])),
            "not ASCII");

    [Fact]
    public void Corrupt_InvalidUtf8Version3Header()
    {
        byte[] header = [.. "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), '"u8, 0xC3, 0x28, .. "': 1}\n"u8];
        byte[] bytes = [0x93, .. "NUMPY"u8, 3, 0, .. LittleEndian32(header.Length), .. header, 0, 0, 0, 0];
        AssertInvalid(WriteFile("utf8.npy", bytes), "UTF-8");
    }

    [Fact]
    public void Corrupt_NegativeDimension() =>
        AssertInvalid(WriteFile("neg.npy", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }", [])),
            "negative dimension -1");

    [Fact]
    public void Corrupt_DimensionAboveInt32() =>
        AssertInvalid(WriteFile("bigdim.npy", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999,), }", [])),
            "dimension 99999999999 is too large");

    [Fact]
    public void Corrupt_ShapeWhoseByteSizeOverflows() =>
        AssertInvalid(WriteFile("overflow.npy", Npy("{'descr': '<i8', 'fortran_order': False, " +
                                                    "'shape': (2147483647, 2147483647, 2147483647, 2147483647), }", [])),
            "too large");

    [Fact]
    public void Corrupt_DataTooShort() =>
        AssertInvalid(WriteFile("short.npy", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 5), }", new byte[96])),
            "data is 96 bytes, shape (5, 5) float32 needs 100");

    [Fact]
    public void Corrupt_DataTooLong() =>
        AssertInvalid(WriteFile("long.npy", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 5), }", new byte[101])),
            "data is 101 bytes, shape (5, 5) float32 needs 100");

    [Fact]
    public void Corrupt_DataTooShort_NonSeekable()
    {
        byte[] bytes = Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", new byte[20]);
        var ex = Assert.Throws<InvalidFileException>(() => NpyFile.Read(new NonSeekableStream(bytes), "pipe.npy"));
        Assert.Contains("pipe.npy", ex.Message);
        Assert.Contains("data is 20 bytes, shape (3,) int64 needs 24", ex.Message);
    }

    [Fact]
    public void Corrupt_DataTooLong_NonSeekable()
    {
        byte[] bytes = Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", new byte[25]);
        var ex = Assert.Throws<InvalidFileException>(() => NpyFile.Read(new NonSeekableStream(bytes), "pipe.npy"));
        Assert.Contains("pipe.npy", ex.Message);
        Assert.Contains("more than 24 bytes", ex.Message);
    }

    [Fact]
    public void Corrupt_HugeShapeOnNonSeekableStream_FailsWithoutAllocatingIt()
    {
        // 2 GiB claimed, 4 bytes present: the reader must report the mismatch rather than allocate the claim.
        byte[] bytes = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (536870000,), }", new byte[4]);
        var ex = Assert.Throws<InvalidFileException>(() => NpyFile.Read(new NonSeekableStream(bytes), "pipe.npy"));
        Assert.Contains("data is 4 bytes", ex.Message);
    }

    // ---- API misuse ----

    [Fact]
    public void Accessors_RefuseOtherDTypes_NamingTheActualOne()
    {
        var ints = NpyArray.FromInt64([1], [1]);
        var floats = NpyArray.FromFloat32([1f], [1]);
        Assert.Contains("int64", Assert.Throws<InvalidOperationException>(() => ints.ToFloat32()).Message);
        Assert.Contains("int64", Assert.Throws<InvalidOperationException>(() => ints.ToInt32()).Message);
        Assert.Contains("float32", Assert.Throws<InvalidOperationException>(() => floats.ToInt64()).Message);
        Assert.Contains("float32", Assert.Throws<InvalidOperationException>(() => floats.ToFloat16()).Message);
    }

    [Fact]
    public void Constructor_ValidatesShapeAndDataLength()
    {
        Assert.Equal("data", Assert.Throws<ArgumentException>(() => NpyArray.FromFloat32([1f, 2f], [3])).ParamName);
        Assert.Equal("shape", Assert.Throws<ArgumentException>(() => NpyArray.FromFloat32([1f], [-1])).ParamName);
        Assert.Equal("shape", Assert.Throws<ArgumentException>(
            () => new NpyArray(NpyDType.Float32, [int.MaxValue, int.MaxValue], [])).ParamName);
    }

    [Fact]
    public void Shape_IsACopy()
    {
        var array = NpyArray.FromInt32([1, 2], [2]);
        array.Shape[0] = 99;
        Assert.Equal([2], array.Shape);
    }

    // ---- helpers ----

    private NpyArray RoundTrip(NpyArray array)
    {
        string path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".npy");
        NpyFile.Write(path, array);
        var read = NpyFile.Read(path);
        Assert.Equal(array.Data, read.Data);
        return read;
    }

    private static byte[] WriteToBytes(NpyArray array)
    {
        var stream = new MemoryStream();
        NpyFile.Write(stream, array);
        return stream.ToArray();
    }

    private string WriteFile(string name, byte[] bytes)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static void AssertInvalid(string path, params string[] fragments)
    {
        var ex = Assert.Throws<InvalidFileException>(() => NpyFile.Read(path));
        Assert.Contains(Path.GetFileName(path), ex.Message);
        foreach (string fragment in fragments)
            Assert.Contains(fragment, ex.Message);
    }

    /// <summary>A .npy file with the given header text (Latin-1, unpadded) and data.</summary>
    private static byte[] Npy(string header, byte[] data, int major = 1)
    {
        byte[] text = Encoding.Latin1.GetBytes(header);
        byte[] length = major == 1 ? [(byte)text.Length, (byte)(text.Length >> 8)] : LittleEndian32(text.Length);
        return [0x93, .. "NUMPY"u8, (byte)major, 0, .. length, .. text, .. data];
    }

    private static byte[] LittleEndian32(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        return bytes;
    }

    private static byte[] Floats(params float[] values) => NpyArray.FromFloat32(values, [values.Length]).Data;

    private static byte[] Int32s(params int[] values) => NpyArray.FromInt32(values, [values.Length]).Data;

    private static byte[] Int64s(params long[] values) => NpyArray.FromInt64(values, [values.Length]).Data;

    private static uint[] Bits(float[] values) => Array.ConvertAll(values, BitConverter.SingleToUInt32Bits);
}

/// <summary>A read-only stream that cannot seek, like a pipe, so readers cannot learn its length up front.</summary>
internal sealed class NonSeekableStream(byte[] bytes) : Stream
{
    private readonly MemoryStream _inner = new(bytes, writable: false);

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 7));
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
