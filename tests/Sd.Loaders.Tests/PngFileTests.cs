using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Loaders.Tests;

public sealed class PngFileTests : IDisposable
{
    private const byte Gray = 0, Rgb = 2, Palette = 3, GrayAlpha = 4, Rgba = 6;

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sd-png-tests-" + Guid.NewGuid().ToString("N"));

    public PngFileTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Crc32_MatchesTheStandardCheckValues()
    {
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));
        Assert.Equal(0u, Crc32.Compute([]));
        Assert.Equal(0xAE426082u, Crc32.Compute("IEND"u8)); // the CRC every PNG ends with
        Assert.Equal(Crc32.Compute("123456789"u8), Crc32.Update(Crc32.Compute("1234"u8), "56789"u8));
    }

    // ---- round trips through the writer ----

    [Fact]
    public void Rgb_RoundTrips_WithLatin1ParametersText()
    {
        var text = new Dictionary<string, string>
        {
            ["parameters"] = "a café at dusk, ÿ ±½\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Seed: 42",
            ["Software"] = "Sd",
        };
        var image = new PngImage(37, 23, 3, RandomBytes(37 * 23 * 3, seed: 1), text);
        string path = Path.Combine(_dir, "rgb.png");

        PngFile.Write(path, image);
        var read = PngFile.Read(path);

        Assert.Equal((37, 23, 3), (read.Width, read.Height, read.Channels));
        Assert.Equal(image.Pixels, read.Pixels);
        Assert.Equal(text, read.Text);
    }

    [Fact]
    public void Unicode_text_RoundTrips_in_iTXt_and_Latin1_stays_tEXt()
    {
        var text = new Dictionary<string, string>
        {
            ["parameters"] = "\u201Cquoted\u201D caf\u00E9, \u65E5\u672C, \U0001F600\nNegative prompt: \u00E9",
            ["Software"] = "Sd",
        };
        byte[] file = Encode(new PngImage(2, 2, 1, [1, 2, 3, 4], text));

        Assert.Equal(text, PngFile.Read(new MemoryStream(file), "utf8.png").Text);
        var chunks = Chunks(file);
        Assert.Equal("iTXt", chunks[1].Type);
        Assert.Equal([.. "parameters"u8, 0, 0, 0, 0, 0, .. Encoding.UTF8.GetBytes(text["parameters"])], chunks[1].Data);
        Assert.Equal("tEXt", chunks[2].Type);
    }

    [Fact]
    public void Read_takes_compressed_iTXt_with_a_language_tag()
    {
        byte[] value = Encoding.UTF8.GetBytes("\u65E5\u672C\u8A9E");
        var compressed = new MemoryStream();
        using (var zlib = new System.IO.Compression.ZLibStream(compressed, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            zlib.Write(value);
        byte[] file = Png(
            Chunk("IHDR", Ihdr(1, 1)),
            Chunk("iTXt", [.. "Title"u8, 0, 1, 0, .. "ja"u8, 0, .. "\u984C"u8, 0, .. compressed.ToArray()]),
            Chunk("IDAT", Deflate([0, 1, 2, 3])),
            Chunk("IEND", []));

        Assert.Equal("\u65E5\u672C\u8A9E", PngFile.Read(new MemoryStream(file), "ja.png").Text["Title"]);
    }

    [Theory]
    [InlineData(new byte[] { (byte)'k', 0, 0 }, "truncated before its text")]
    [InlineData(new byte[] { (byte)'k', 0, 2, 0, 0, 0, (byte)'x' }, "compression flag 2")]
    [InlineData(new byte[] { (byte)'k', 0, 0, 0, 0, 0, 0xFF }, "not valid UTF-8")]
    [InlineData(new byte[] { (byte)'k', 0, 1, 0, 0, 0, 1, 2, 3 }, "not valid zlib data")]
    [InlineData(new byte[] { 0, 0, 0, 0, 0 }, "keyword is not 1 to 79 bytes")]
    public void Corrupt_iTXt_is_refused(byte[] data, string problem) =>
        AssertInvalid("itxt.png", Png(Chunk("IHDR", Ihdr(1, 1)), Chunk("iTXt", data), Chunk("IDAT", Deflate([0, 1, 2, 3])), Chunk("IEND", [])),
            "iTXt", problem);

    /// <summary>zTXt (zlib-compressed Latin-1) is read as Pillow reads it; a tEXt of the same keyword before it wins.</summary>
    [Fact]
    public void Read_takes_zTXt_text()
    {
        var compressed = new MemoryStream();
        using (var zlib = new System.IO.Compression.ZLibStream(compressed, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            zlib.Write(Encoding.Latin1.GetBytes("caf\u00E9, Steps: 20"));
        byte[] file = Png(
            Chunk("IHDR", Ihdr(1, 1)),
            Chunk("tEXt", [.. "first"u8, 0, .. "kept"u8]),
            Chunk("zTXt", [.. "parameters"u8, 0, 0, .. compressed.ToArray()]),
            Chunk("zTXt", [.. "first"u8, 0, 0, .. compressed.ToArray()]),
            Chunk("IDAT", Deflate([0, 1, 2, 3])),
            Chunk("IEND", []));

        IReadOnlyDictionary<string, string> text = PngFile.Read(new MemoryStream(file), "z.png").Text;
        Assert.Equal("caf\u00E9, Steps: 20", text["parameters"]);
        Assert.Equal("kept", text["first"]);
    }

    [Theory]
    [InlineData(new byte[] { (byte)'k', 0 }, "no compression method 0")]
    [InlineData(new byte[] { (byte)'k', 0, 1, 0x78, 0x9C }, "no compression method 0")]
    [InlineData(new byte[] { (byte)'k', 0, 0, 1, 2, 3 }, "not valid zlib data")]
    [InlineData(new byte[] { 0, 0, 0 }, "keyword is not 1 to 79 bytes")]
    public void Corrupt_zTXt_is_refused(byte[] data, string problem) =>
        AssertInvalid("ztxt.png", Png(Chunk("IHDR", Ihdr(1, 1)), Chunk("zTXt", data), Chunk("IDAT", Deflate([0, 1, 2, 3])), Chunk("IEND", [])),
            "zTXt", problem);

    [Fact]
    public void Read_refuses_a_compressed_iTXt_that_inflates_past_a_mebibyte()
    {
        var compressed = new MemoryStream();
        using (var zlib = new System.IO.Compression.ZLibStream(compressed, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            zlib.Write(new byte[(1 << 20) + 1]);
        AssertInvalid("bomb.png", Png(Chunk("IHDR", Ihdr(1, 1)), Chunk("iTXt", [.. "k"u8, 0, 1, 0, 0, 0, .. compressed.ToArray()]),
            Chunk("IDAT", Deflate([0, 1, 2, 3])), Chunk("IEND", [])), "inflates past 1048576 bytes in all");
    }

    [Fact]
    public void Read_bounds_the_text_of_many_compressed_iTXt_chunks_together()
    {
        // Each chunk inflates to 300 KiB, under any per-chunk limit; four of them pass 1 MiB in all.
        var compressed = new MemoryStream();
        using (var zlib = new System.IO.Compression.ZLibStream(compressed, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            zlib.Write(new byte[300 << 10]);
        byte[] Text(string keyword) => Chunk("iTXt", [.. Encoding.Latin1.GetBytes(keyword), 0, 1, 0, 0, 0, .. compressed.ToArray()]);
        byte[] Image(params string[] keywords) =>
            Png([Chunk("IHDR", Ihdr(1, 1)), .. keywords.Select(Text), Chunk("IDAT", Deflate([0, 1, 2, 3])), Chunk("IEND", [])]);

        Assert.Equal(3, PngFile.Read(new MemoryStream(Image("a", "b", "c")), "three.png").Text.Count);
        // A repeated keyword is not inflated at all (the first wins), so it costs nothing.
        Assert.Equal(3, PngFile.Read(new MemoryStream(Image("a", "b", "c", "a", "b", "c", "a")), "repeats.png").Text.Count);
        AssertInvalid("four.png", Image("a", "b", "c", "d"), "inflates past 1048576 bytes in all");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4)]
    public void EveryChannelCount_RoundTrips_ForNoiseAndGradients(int channels)
    {
        foreach (byte[] pixels in new[] { RandomBytes(19 * 11 * channels, seed: channels), Gradient(19, 11, channels) })
        {
            var read = PngFile.Read(new MemoryStream(Encode(new PngImage(19, 11, channels, pixels))), "mem.png");
            Assert.Equal(channels, read.Channels);
            Assert.Equal(pixels, read.Pixels);
            Assert.Empty(read.Text);
        }
    }

    [Fact]
    public void OnePixelImage_RoundTrips()
    {
        var read = PngFile.Read(new MemoryStream(Encode(new PngImage(1, 1, 4, [1, 2, 3, 4]))), "tiny.png");
        Assert.Equal([1, 2, 3, 4], read.Pixels);
    }

    [Fact]
    public void Writer_UsesAdaptiveFilters_ForSmoothImages()
    {
        // A gradient compresses best with Sub/Up/Average/Paeth; the heuristic must pick something other than None.
        byte[] file = Encode(new PngImage(64, 64, 3, Gradient(64, 64, 3)));
        byte[] raw = Inflate(Concat(Chunks(file).Where(c => c.Type == "IDAT").Select(c => c.Data)));

        Assert.Equal(64 * (1 + 64 * 3), raw.Length);
        Assert.Contains(Enumerable.Range(0, 64), y => raw[y * (1 + 64 * 3)] != 0);
    }

    [Fact]
    public void Writer_ProducesStandardChunks()
    {
        var image = new PngImage(300, 200, 3, RandomBytes(300 * 200 * 3, seed: 7),
            new Dictionary<string, string> { ["parameters"] = "é" });
        var chunks = Chunks(Encode(image));

        Assert.Equal("IHDR", chunks[0].Type);
        Assert.Equal([0, 0, 1, 44, 0, 0, 0, 200, 8, Rgb, 0, 0, 0], chunks[0].Data);
        Assert.Equal("tEXt", chunks[1].Type);
        Assert.Equal([.. "parameters"u8, 0, 0xE9], chunks[1].Data);
        Assert.True(chunks.Count(c => c.Type == "IDAT") >= 2, "180 KB of noise should span several IDAT chunks");
        Assert.Equal("IEND", chunks[^1].Type);
        Assert.Empty(chunks[^1].Data);
    }

    [Fact]
    public void Write_OverwritesAtomically_AndLeavesNoTemporaryFiles()
    {
        string path = Path.Combine(_dir, "out.png");
        File.WriteAllText(path, "old contents");

        PngFile.Write(path, new PngImage(2, 1, 1, [10, 20]));

        Assert.Equal([10, 20], PngFile.Read(path).Pixels);
        Assert.Equal([path], Directory.GetFiles(_dir));
    }

    [Fact]
    public void Write_WithInvalidText_CreatesNothing()
    {
        string path = Path.Combine(_dir, "bad.png");
        var image = new PngImage(1, 1, 1, [0], new Dictionary<string, string> { [""] = "x" });

        Assert.Throws<ArgumentException>(() => PngFile.Write(path, image));
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    // ---- reading files from other encoders (hand-built here) ----

    [Theory]
    [InlineData(Gray, 1)]
    [InlineData(Rgb, 3)]
    [InlineData(Rgba, 4)]
    public void Read_DecodesEveryFilterType(byte colorType, int channels)
    {
        const int width = 13, height = 10;
        byte[] pixels = RandomBytes(width * height * channels, seed: 100 + colorType);
        int[] filters = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0];
        byte[] file = Png(
            Chunk("IHDR", Ihdr(width, height, colorType: colorType)),
            Chunk("IDAT", Deflate(ReferenceFilter(pixels, width, height, channels, filters))),
            Chunk("IEND", []));

        var read = PngFile.Read(new MemoryStream(file), "filters.png");

        Assert.Equal((width, height, channels), (read.Width, read.Height, read.Channels));
        Assert.Equal(pixels, read.Pixels);
    }

    [Fact]
    public void Read_SkipsAncillaryChunks_AcceptsPlte_KeepsFirstDuplicateKeyword_AndIgnoresBytesAfterIend()
    {
        byte[] raw = [0, 1, 2, 3];
        byte[] file = [.. Png(
            Chunk("IHDR", Ihdr(1, 1)),
            Chunk("gAMA", [0, 0, 0xB1, 0x8F]),
            Chunk("PLTE", [1, 2, 3]),
            Chunk("tEXt", [.. "parameters"u8, 0, .. "first"u8]),
            Chunk("IDAT", Deflate(raw)[..3]),
            Chunk("IDAT", Deflate(raw)[3..]),
            Chunk("tEXt", [.. "parameters"u8, 0, .. "second"u8]),
            Chunk("tEXt", [.. "Empty"u8, 0]),
            Chunk("IEND", [])), .. "trailing junk"u8];

        var read = PngFile.Read(new MemoryStream(file), "extra.png");

        Assert.Equal([1, 2, 3], read.Pixels);
        Assert.Equal("first", read.Text["parameters"]);
        Assert.Equal("", read.Text["Empty"]);
    }

    [Fact]
    public void Read_FromNonSeekableStream_Works()
    {
        byte[] pixels = RandomBytes(50 * 40 * 3, seed: 3);
        var read = PngFile.Read(new NonSeekableStream(Encode(new PngImage(50, 40, 3, pixels))), "pipe.png");
        Assert.Equal(pixels, read.Pixels);
    }

    // ---- corrupt or unsupported files ----

    [Fact]
    public void Corrupt_EmptyFile() => AssertInvalid("empty.png", [], "PNG file is empty (0 bytes)");

    [Fact]
    public void Corrupt_EmptyStream()
    {
        var ex = Assert.Throws<InvalidFileException>(() => PngFile.Read(new MemoryStream([]), "empty.png"));
        Assert.Contains("empty.png", ex.Message);
        Assert.Contains("not a PNG file", ex.Message);
        Assert.Contains("empty", ex.Message);
    }

    [Fact]
    public void Corrupt_BadSignature() =>
        AssertInvalid("photo.png", [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, (byte)'J', (byte)'F', (byte)'I', (byte)'F'], "bad signature");

    [Fact]
    public void Corrupt_SignatureOnly() =>
        AssertInvalid("sig.png", [0x89, .. "PNG"u8, 0x0D, 0x0A, 0x1A, 0x0A], "truncated", "before IHDR");

    [Fact]
    public void Corrupt_ShortSignature() => AssertInvalid("short.png", [0x89, (byte)'P', (byte)'N'], "bad signature");

    [Fact]
    public void Corrupt_BadCrcInIdat()
    {
        byte[] file = ValidRgb(4, 4);
        file[FindChunk(file, "IDAT") + 9] ^= 0x01; // first data byte of IDAT
        AssertInvalid("crc.png", file, "CRC mismatch", "'IDAT'");
    }

    [Fact]
    public void Corrupt_BadCrcInIhdr()
    {
        byte[] file = ValidRgb(4, 4);
        file[8 + 8 + 13] ^= 0x80; // first byte of IHDR's CRC
        AssertInvalid("crc.png", file, "CRC mismatch", "'IHDR'");
    }

    [Fact]
    public void Corrupt_FileCutInsideIdat()
    {
        byte[] file = ValidRgb(8, 8);
        AssertInvalid("cut.png", file[..(FindChunk(file, "IDAT") + 12)], "truncated chunk 'IDAT'");
    }

    [Fact]
    public void Corrupt_FileCutInsideIdat_NonSeekable()
    {
        byte[] file = ValidRgb(8, 8);
        var ex = Assert.Throws<InvalidFileException>(
            () => PngFile.Read(new NonSeekableStream(file[..(FindChunk(file, "IDAT") + 12)]), "pipe.png"));
        Assert.Contains("pipe.png", ex.Message);
        Assert.Contains("truncated chunk 'IDAT'", ex.Message);
    }

    [Fact]
    public void Corrupt_IdatHoldsTooFewRows() =>
        AssertInvalid("rows.png", Png(
                Chunk("IHDR", Ihdr(4, 4)),
                Chunk("IDAT", Deflate(new byte[3 * (1 + 4 * 3)])),
                Chunk("IEND", [])),
            "image data (IDAT) is truncated", "inflates to 39 bytes", "needs 52");

    [Fact]
    public void Corrupt_IdatHoldsTooMuchData() =>
        AssertInvalid("long.png", Png(
                Chunk("IHDR", Ihdr(4, 4)),
                Chunk("IDAT", Deflate(new byte[4 * (1 + 4 * 3) + 1])),
                Chunk("IEND", [])),
            "IDAT", "more than the 52 bytes");

    [Fact]
    public void Corrupt_DecompressionBomb_IsRefusedWithoutInflatingIt() =>
        AssertInvalid("bomb.png", Png(
                Chunk("IHDR", Ihdr(4, 4)),
                Chunk("IDAT", Deflate(new byte[64 << 20])),
                Chunk("IEND", [])),
            "more than the 52 bytes");

    [Fact]
    public void Corrupt_IdatIsNotZlib() =>
        AssertInvalid("zlib.png", Png(
                Chunk("IHDR", Ihdr(4, 4)),
                Chunk("IDAT", [0x78, 0x9C, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
                Chunk("IEND", [])),
            "IDAT", "corrupt");

    [Fact]
    public void Corrupt_MissingIend()
    {
        byte[] file = ValidRgb(4, 4);
        AssertInvalid("noend.png", file[..^12], "missing IEND");
    }

    [Fact]
    public void Corrupt_NoIdat() =>
        AssertInvalid("noidat.png", Png(Chunk("IHDR", Ihdr(4, 4)), Chunk("IEND", [])), "no IDAT");

    [Fact]
    public void Corrupt_IhdrNotFirst() =>
        AssertInvalid("order.png", Png(
                Chunk("tEXt", [.. "a"u8, 0]),
                Chunk("IHDR", Ihdr(1, 1)),
                Chunk("IDAT", Deflate([0, 0, 0, 0])),
                Chunk("IEND", [])),
            "first chunk is 'tEXt'", "IHDR");

    [Fact]
    public void Corrupt_DuplicateIhdr() =>
        AssertInvalid("twice.png", Png(Chunk("IHDR", Ihdr(1, 1)), Chunk("IHDR", Ihdr(1, 1)), Chunk("IEND", [])),
            "duplicate IHDR");

    [Fact]
    public void Corrupt_IhdrWrongLength() =>
        AssertInvalid("ihdr.png", Png(Chunk("IHDR", new byte[12]), Chunk("IEND", [])), "IHDR", "expected 13");

    [Theory]
    [InlineData(16, Palette, "bit depth 16 with color type 3 (palette)")]
    [InlineData(4, Rgb, "bit depth 4 with color type 2 (RGB)")]
    [InlineData(2, GrayAlpha, "bit depth 2 with color type 4 (gray+alpha)")]
    [InlineData(3, Gray, "bit depth 3 with color type 0 (gray)")]
    [InlineData(8, 5, "color type 5 (unknown)")]
    public void Invalid_Formats(byte bitDepth, byte colorType, string found) =>
        AssertInvalid("format.png", Png(
                Chunk("IHDR", Ihdr(4, 4, bitDepth, colorType)),
                Chunk("IDAT", Deflate(new byte[200])),
                Chunk("IEND", [])),
            found, "is not a PNG format");

    /// <summary>A palette picture needs one PLTE of whole RGB triples before its data, and a tRNS no longer than it.</summary>
    [Theory]
    [InlineData("none", "without a PLTE chunk")]
    [InlineData("ragged", "PLTE chunk is 4 bytes")]
    [InlineData("twice", "duplicate PLTE")]
    [InlineData("late", "PLTE chunk comes after the image data")]
    [InlineData("long tRNS", "tRNS chunk has 3 alpha values for a palette of 2")]
    [InlineData("tRNS first", "tRNS chunk must come once, after PLTE")]
    public void Corrupt_Palettes(string what, string message)
    {
        byte[] plte = Chunk("PLTE", [1, 2, 3, 4, 5, 6]), idat = Chunk("IDAT", Deflate([0, 0, 1, 0, 1, 0]));
        byte[][] middle = what switch
        {
            "none" => [idat],
            "ragged" => [Chunk("PLTE", [1, 2, 3, 4]), idat],
            "twice" => [plte, plte, idat],
            "late" => [idat, plte],
            "long tRNS" => [plte, Chunk("tRNS", [1, 2, 3]), idat],
            _ => [Chunk("tRNS", [1]), plte, idat],
        };
        AssertInvalid("palette.png", Png([Chunk("IHDR", Ihdr(2, 2, 8, Palette)), .. middle, Chunk("IEND", [])]), message);
    }

    /// <summary>An interlaced 4x4 RGB picture stores 55 bytes of rows in its passes (5 of them non-empty), not 52.</summary>
    [Fact]
    public void Corrupt_InterlacedRowsTooShort() =>
        AssertInvalid("adam7.png", Png(
                Chunk("IHDR", Ihdr(4, 4, interlace: 1)),
                Chunk("IDAT", Deflate(new byte[4 * (1 + 4 * 3)])),
                Chunk("IEND", [])),
            "inflates to 52 bytes", "4x4 RGB interlaced image needs 55");

    [Fact]
    public void Unsupported_UnknownCriticalChunk() =>
        AssertInvalid("crit.png", Png(
                Chunk("IHDR", Ihdr(1, 1)),
                Chunk("ZZZZ", []),
                Chunk("IDAT", Deflate([0, 0, 0, 0])),
                Chunk("IEND", [])),
            "critical chunk 'ZZZZ'");

    [Fact]
    public void Corrupt_UnknownFilterType()
    {
        byte[] raw = new byte[3 * (1 + 2 * 3)];
        raw[1 + 2 * 3] = 5; // second row
        AssertInvalid("filter.png", Png(
                Chunk("IHDR", Ihdr(2, 3)),
                Chunk("IDAT", Deflate(raw)),
                Chunk("IEND", [])),
            "row 1", "unknown filter type 5");
    }

    [Theory]
    [InlineData(100000, 1, "each dimension may be at most 65535")]
    [InlineData(1, 4000000000, "each dimension may be at most 65535")]
    [InlineData(60000, 60000, "3600000000 pixels")]
    [InlineData(0, 5, "zero dimension")]
    public void Corrupt_ImageSizes(long width, long height, string problem) =>
        AssertInvalid("size.png", Png(
                Chunk("IHDR", Ihdr((uint)width, (uint)height)),
                Chunk("IDAT", Deflate([0])),
                Chunk("IEND", [])),
            problem);

    [Fact]
    public void Corrupt_ChunkLengthAbovePngLimit()
    {
        byte[] file = ValidRgb(2, 2);
        int idat = FindChunk(file, "IDAT");
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(idat), 0x80000000);
        AssertInvalid("length.png", file, "'IDAT'", "2^31-1");
    }

    [Fact]
    public void Corrupt_IdatChunksNotConsecutive() =>
        AssertInvalid("split.png", Png(
                Chunk("IHDR", Ihdr(1, 1)),
                Chunk("IDAT", Deflate([0, 0, 0, 0])[..3]),
                Chunk("tEXt", [.. "a"u8, 0]),
                Chunk("IDAT", Deflate([0, 0, 0, 0])[3..]),
                Chunk("IEND", [])),
            "IDAT chunks are not consecutive");

    [Fact]
    public void Corrupt_TextWithoutSeparator() =>
        AssertInvalid("text.png", Png(
                Chunk("IHDR", Ihdr(1, 1)),
                Chunk("tEXt", "parameters"u8.ToArray()),
                Chunk("IDAT", Deflate([0, 0, 0, 0])),
                Chunk("IEND", [])),
            "tEXt", "NUL");

    [Fact]
    public void Corrupt_InvalidChunkType()
    {
        byte[] file = ValidRgb(2, 2);
        file[FindChunk(file, "IDAT") + 4] = (byte)'1';
        AssertInvalid("type.png", file, "invalid type");
    }

    // ---- argument validation ----

    [Fact]
    public void PngImage_ValidatesItsArguments()
    {
        Assert.Equal("width", Assert.ThrowsAny<ArgumentException>(() => new PngImage(0, 1, 3, [])).ParamName);
        Assert.Equal("height", Assert.ThrowsAny<ArgumentException>(() => new PngImage(1, -1, 3, [])).ParamName);
        Assert.Equal("channels", Assert.ThrowsAny<ArgumentException>(() => new PngImage(1, 1, 2, [0, 0])).ParamName);
        Assert.Equal("pixels", Assert.ThrowsAny<ArgumentException>(() => new PngImage(2, 2, 3, new byte[11])).ParamName);
    }

    [Theory]
    [InlineData("", "x", "1 to 79")]
    [InlineData("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", "x", "1 to 79")]
    [InlineData(" parameters", "x", "spaces")]
    [InlineData("para  meters", "x", "spaces")]
    [InlineData("key\u0410", "x", "U+0410")]
    [InlineData("key\n", "x", "U+000A")]
    [InlineData("parameters", "nul\0", "U+0000 at 3")]
    [InlineData("parameters", "\u65E5\0", "U+0000 at 1")]
    public void Write_RefusesTextThatTextChunksCannotHold(string keyword, string value, string problem)
    {
        var image = new PngImage(1, 1, 1, [0], new Dictionary<string, string> { [keyword] = value });
        var ex = Assert.Throws<ArgumentException>(() => PngFile.Write(new MemoryStream(), image));
        Assert.Equal("image", ex.ParamName);
        Assert.Contains(problem, ex.Message);
    }

    [Fact]
    public void Write_RefusesLoneSurrogates()
    {
        // Built in code: attribute arguments cannot hold a lone surrogate (metadata stores them as UTF-8).
        foreach (string value in new[] { "a" + (char)0xD83D, (char)0xDE00 + "b", "\U0001F600" + (char)0xD83D + "x" })
        {
            var image = new PngImage(1, 1, 1, [0], new Dictionary<string, string> { ["parameters"] = value });
            var ex = Assert.Throws<ArgumentException>(() => PngFile.Write(new MemoryStream(), image));
            Assert.Contains("lone surrogate", ex.Message);
        }
    }

    [Fact]
    public void Read_with_a_size_refuses_another_size_from_the_header_alone()
    {
        string path = Path.Combine(_dir, "big.png");
        File.WriteAllBytes(path, Png(Chunk("IHDR", Ihdr(16384, 16384)), Chunk("IDAT", [1, 2, 3])));
        var ex = Assert.Throws<InvalidFileException>(() => PngFile.Read(path, 64, 64));
        Assert.Equal($"{path}: the picture is 16384x16384; 64x64 is needed", ex.Message);
        PngFile.Write(path, new PngImage(3, 2, 1, [1, 2, 3, 4, 5, 6]));
        Assert.Equal([1, 2, 3, 4, 5, 6], PngFile.Read(path, 3, 2).Pixels);
    }

    [Fact]
    public void A_zlib_stream_asking_for_a_preset_dictionary_is_invalid()
    {
        // 78 20: zlib header with FDICT set (PNG forbids it); .NET throws ZLibException, an IOException, not InvalidDataException.
        AssertInvalid("fdict.png", Png(Chunk("IHDR", Ihdr(1, 1, colorType: Gray)), Chunk("IDAT", [0x78, 0x20, 0, 0, 0, 0, 3, 0]), Chunk("IEND", [])),
            "image data (IDAT) is corrupt");
    }

    [Fact]
    public void A_tiny_file_claiming_a_huge_image_fails_before_allocating_it()
    {
        byte[] file = Png(Chunk("IHDR", Ihdr(16384, 16384, colorType: Rgba)), Chunk("IDAT", Deflate([0, 1, 2, 3])), Chunk("IEND", []));
        long before = GC.GetAllocatedBytesForCurrentThread();
        AssertInvalid("claims-1gib.png", file, "image data (IDAT) is truncated", "a 16384x16384");
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 16 << 20, $"a 100-byte file made the decoder allocate {allocated} bytes");
    }

    [Fact]
    public void Images_larger_than_the_first_inflate_buffer_decode()
    {
        // 700 x 700 RGB: 1.47 MB of filtered rows, past the first 1 MiB buffer, so it grows once.
        const int side = 700;
        var pixels = new byte[side * side * 3];
        new Random(5).NextBytes(pixels);
        string path = Path.Combine(_dir, "large.png");
        PngFile.Write(path, new PngImage(side, side, 3, pixels));
        Assert.Equal(pixels, PngFile.Read(path).Pixels);
    }

    // ---- helpers ----

    // ---- EXIF orientation and text ----

    public static TheoryData<string> OrientedCases() => ReferenceFiles.Names(ReferenceFiles.Png, "oriented");

    /// <summary>Each way of storing the orientation (Data/png-formats-reference.py's "oriented"): the upright picture
    /// is ImageOps.exif_transpose's, a required size is the upright one, a plain read keeps the picture as stored.</summary>
    [Theory]
    [MemberData(nameof(OrientedCases))]
    public void Reading_upright_finds_the_orientation_where_pillow_does(string name)
    {
        JsonElement c = ReferenceFiles.Case(ReferenceFiles.Png, name, "oriented");
        string path = Path.Combine(_dir, "turned.png");
        File.WriteAllBytes(path, Convert.FromBase64String(c.GetProperty("png").GetString()!));
        int width = c.GetProperty("width").GetInt32(), height = c.GetProperty("height").GetInt32();
        PngImage upright = PictureFile.ReadUpright(path, width, height);
        Assert.Equal(Convert.FromBase64String(c.GetProperty("rgb").GetString()!), upright.Pixels);
        Assert.Equal(upright.Pixels, PngFile.ReadUpright(path).Pixels);
        PngImage stored = PngFile.Read(path);
        Assert.Equal((13, 7), (stored.Width, stored.Height));
        if (width != 13)
        {
            var e = Assert.Throws<InvalidFileException>(() => PictureFile.ReadUpright(path, 13, 7));
            Assert.Equal($"{path}: the picture is 7x13 upright; 13x7 is needed", e.Message);
        }
    }

    [Fact]
    public void An_upright_read_refuses_a_size_that_fits_neither_way_up_from_the_header_alone()
    {
        string path = Path.Combine(_dir, "big.png");
        File.WriteAllBytes(path, Png(Chunk("IHDR", Ihdr(16384, 8192)), Chunk("IDAT", [1, 2, 3])));
        var ex = Assert.Throws<InvalidFileException>(() => PngFile.ReadUpright(path, (64, 64)));
        Assert.Equal($"{path}: the picture is 16384x8192; 64x64 is needed", ex.Message);
    }

    /// <summary>A1111's read_info_from_image takes an EXIF UserComment from Pillow's info["exif"] (a PNG's eXIf chunk)
    /// over the "parameters" text, wherever the chunks stand; ImageMagick's raw profile is not info["exif"].</summary>
    [Fact]
    public void An_exif_user_comment_becomes_parameters_as_A1111_reads_it()
    {
        byte[] tiff = ExifTiff.WithUserComment([.. "ASCII\0\0\0"u8, .. "a lighthouse, Steps: 20"u8], little: false);
        byte[] parameters = [.. "parameters\0"u8, .. "an old prompt"u8];
        byte[] ihdr = Chunk("IHDR", Ihdr(1, 1, colorType: Gray)), idat = Chunk("IDAT", Deflate([0, 7])), iend = Chunk("IEND", []);
        byte[] before = Png(ihdr, Chunk("eXIf", tiff), Chunk("tEXt", parameters), idat, iend);
        byte[] after = Png(ihdr, Chunk("tEXt", parameters), idat, Chunk("eXIf", tiff), iend);
        foreach (byte[] file in new[] { before, after })
            Assert.Equal("a lighthouse, Steps: 20", PngFile.Read(new MemoryStream(file), "exif.png").Text["parameters"]);

        string profile = $"\nexif\n{tiff.Length,8}\n{Convert.ToHexString(tiff)}\n";
        byte[] raw = Png(ihdr, Chunk("tEXt", parameters), Chunk("tEXt", [.. "Raw profile type exif\0"u8, .. Encoding.Latin1.GetBytes(profile)]), idat, iend);
        Assert.Equal("an old prompt", PngFile.Read(new MemoryStream(raw), "raw.png").Text["parameters"]);
    }

    private void AssertInvalid(string name, byte[] file, params string[] fragments)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, file);
        var ex = Assert.Throws<InvalidFileException>(() => PngFile.Read(path));
        Assert.Contains(name, ex.Message);
        foreach (string fragment in fragments)
            Assert.Contains(fragment, ex.Message);
    }

    private static byte[] Encode(PngImage image)
    {
        var stream = new MemoryStream();
        PngFile.Write(stream, image);
        return stream.ToArray();
    }

    private static byte[] ValidRgb(int width, int height) =>
        Encode(new PngImage(width, height, 3, RandomBytes(width * height * 3, seed: width)));

    private static byte[] RandomBytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static byte[] Gradient(int width, int height, int channels)
    {
        var pixels = new byte[width * height * channels];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < channels; c++)
                    pixels[(y * width + x) * channels + c] = (byte)(x * 3 + y * 2 + c * 40);
        return pixels;
    }

    private static byte[] Png(params byte[][] chunks) =>
        [0x89, .. "PNG"u8, 0x0D, 0x0A, 0x1A, 0x0A, .. Concat(chunks)];

    private static byte[] Chunk(string type, byte[] data)
    {
        byte[] typeBytes = Encoding.ASCII.GetBytes(type);
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(chunk, data.Length);
        typeBytes.CopyTo(chunk, 4);
        data.CopyTo(chunk, 8);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc32.Update(Crc32.Compute(typeBytes), data));
        return chunk;
    }

    private static byte[] Ihdr(uint width, uint height, byte bitDepth = 8, byte colorType = Rgb, byte interlace = 0)
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = bitDepth;
        ihdr[9] = colorType;
        ihdr[12] = interlace;
        return ihdr;
    }

    private static byte[] Deflate(byte[] raw)
    {
        var output = new MemoryStream();
        using (var zlib = new ZLibStream(output, CompressionLevel.Fastest, leaveOpen: true))
            zlib.Write(raw);
        return output.ToArray();
    }

    private static byte[] Inflate(byte[] compressed)
    {
        var output = new MemoryStream();
        using (var zlib = new ZLibStream(new MemoryStream(compressed), CompressionMode.Decompress))
            zlib.CopyTo(output);
        return output.ToArray();
    }

    private static byte[] Concat(IEnumerable<byte[]> parts)
    {
        var output = new MemoryStream();
        foreach (byte[] part in parts)
            output.Write(part);
        return output.ToArray();
    }

    /// <summary>Splits a PNG into its chunks, assuming it is well formed.</summary>
    private static List<(string Type, byte[] Data)> Chunks(byte[] file)
    {
        var chunks = new List<(string, byte[])>();
        for (int at = 8; at < file.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(file.AsSpan(at));
            chunks.Add((Encoding.ASCII.GetString(file, at + 4, 4), file[(at + 8)..(at + 8 + length)]));
            at += 12 + length;
        }
        return chunks;
    }

    /// <summary>Offset of the first chunk of the given type (its length field).</summary>
    private static int FindChunk(byte[] file, string type)
    {
        for (int at = 8; ;)
        {
            if (Encoding.ASCII.GetString(file, at + 4, 4) == type)
                return at;
            at += 12 + BinaryPrimitives.ReadInt32BigEndian(file.AsSpan(at));
        }
    }

    /// <summary>
    /// Filters rows with the given types straight from the PNG spec's definitions, independently of the library, so
    /// the reader's unfiltering is checked against a second implementation.
    /// </summary>
    private static byte[] ReferenceFilter(byte[] pixels, int width, int height, int bpp, int[] types)
    {
        int stride = width * bpp;
        var raw = new byte[height * (stride + 1)];
        for (int y = 0; y < height; y++)
        {
            raw[y * (stride + 1)] = (byte)types[y];
            for (int i = 0; i < stride; i++)
            {
                int x = pixels[y * stride + i];
                int a = i >= bpp ? pixels[y * stride + i - bpp] : 0;
                int b = y > 0 ? pixels[(y - 1) * stride + i] : 0;
                int c = i >= bpp && y > 0 ? pixels[(y - 1) * stride + i - bpp] : 0;
                int p = a + b - c;
                int paeth = Math.Abs(p - a) <= Math.Abs(p - b) && Math.Abs(p - a) <= Math.Abs(p - c) ? a
                    : Math.Abs(p - b) <= Math.Abs(p - c) ? b : c;
                int predicted = types[y] switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, _ => paeth };
                raw[y * (stride + 1) + 1 + i] = (byte)(x - predicted);
            }
        }
        return raw;
    }
}
