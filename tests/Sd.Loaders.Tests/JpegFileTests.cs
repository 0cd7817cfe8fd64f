using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Sd.Loaders.Jpeg;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Loaders.Tests;

/// <summary>
/// What the JPEG reader refuses (by name, naming the file), the size check before decoding, A1111's EXIF
/// UserComment as "parameters", and PictureFile telling PNG from JPEG by the bytes.
/// </summary>
public sealed class JpegFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Baseline() => ReferenceFiles.Files(ReferenceFiles.Jpeg, "jpeg")[0]; // 37x21, 4:2:0, JFIF

    [Fact]
    public void Unsupported_kinds_are_refused_by_name()
    {
        using JsonDocument reference = ReferenceFiles.Open(ReferenceFiles.Jpeg);
        byte[] arithmetic = Convert.FromBase64String(reference.RootElement.GetProperty("arithmetic").GetString()!);
        AssertRefused(arithmetic, "arith.jpg", "an arithmetic-coded JPEG (SOF9); only baseline, extended sequential and progressive Huffman-coded JPEGs are read");

        byte[] twelveBit = Baseline();
        twelveBit[FrameHeader(twelveBit)] = 12;
        AssertRefused(twelveBit, "deep.jpg", "a 12-bit JPEG; only 8-bit samples are read");

        byte[] cut = Baseline()[..^50]; // inside the scan
        AssertRefused(cut, "cut.jpg", "truncated: the file ends before its EOI marker");

        // The scan again before EOI: a sequential frame codes each component once.
        byte[] baseline = Baseline();
        int sos = baseline.AsSpan().IndexOf((ReadOnlySpan<byte>)[0xFF, 0xDA]);
        byte[] twice = [.. baseline[..^2], .. baseline[sos..]];
        AssertRefused(twice, "twice.jpg", "sequential scan 1 codes component 1 again; each is coded in one scan");

        byte[] noEnd = Baseline()[..^2];
        AssertRefused(noEnd, "open.jpg", "truncated: the file ends before its EOI marker");

        // The largest frame a JPEG can state, past the pixel limit every picture reader shares, refused before decoding.
        byte[] huge = Baseline();
        huge.AsSpan(FrameHeader(huge) + 1, 4).Fill(0xFF);
        AssertRefused(huge, "huge.jpg", $"image size 65535x65535 is too large: {65535L * 65535} pixels, at most {PngFile.MaxPixels} supported");
    }

    [Fact]
    public void A_required_size_is_checked_from_the_frame_header()
    {
        string path = _dir.Write("photo.jpg", Baseline());
        var e = Assert.Throws<InvalidFileException>(() => JpegFile.Read(path, 64, 64));
        Assert.Equal($"{path}: the picture is 37x21; 64x64 is needed", e.Message);
        Assert.Equal((37, 21), (JpegFile.Read(path, 37, 21).Width, JpegFile.Read(path, 37, 21).Height));
    }

    [Theory]
    [InlineData("UNICODE\0", "a cat, ünïcode 猫\nSteps: 20")]
    [InlineData("ASCII\0\0\0", "a cat\nSteps: 20")]
    public void A1111s_exif_user_comment_is_the_parameters_text(string prefix, string parameters)
    {
        Encoding encoding = prefix.StartsWith("UNICODE", StringComparison.Ordinal) ? Encoding.BigEndianUnicode : Encoding.ASCII;
        foreach (bool little in new[] { false, true })
        {
            byte[] comment = [.. Encoding.ASCII.GetBytes(prefix), .. encoding.GetBytes(parameters)];
            PngImage image = JpegFile.Read(new MemoryStream(WithExif(Baseline(), comment, little)), "exif.jpg");
            Assert.Equal(parameters, image.Text["parameters"]);
        }
    }

    [Fact]
    public void A_user_comment_without_a_known_prefix_is_utf8_with_bad_bytes_dropped()
    {
        byte[] comment = [0, 0, 0, 0, 0, 0, 0, 0, .. Encoding.UTF8.GetBytes("a cat"), 0xFF];
        PngImage image = JpegFile.Read(new MemoryStream(WithExif(Baseline(), comment, little: false)), "exif.jpg");
        Assert.Equal("\0\0\0\0\0\0\0\0a cat", image.Text["parameters"]);
        Assert.Empty(JpegFile.Read(new MemoryStream(Baseline()), "plain.jpg").Text);
    }

    /// <summary>Each EXIF orientation turns the picture as Pillow's ImageOps.exif_transpose does; a required size is
    /// the upright one; a plain read keeps the picture as stored.</summary>
    [Theory]
    [InlineData(1), InlineData(2), InlineData(3), InlineData(4), InlineData(5), InlineData(6), InlineData(7), InlineData(8)]
    public void Reading_upright_applies_the_exif_orientation_as_pillow_does(int orientation)
    {
        using JsonDocument reference = ReferenceFiles.Open(ReferenceFiles.Jpeg);
        JsonElement c = reference.RootElement.GetProperty("oriented")[orientation - 1];
        Assert.Equal(orientation, c.GetProperty("orientation").GetInt32());
        string path = _dir.Write($"turned{orientation}.jpg", Convert.FromBase64String(c.GetProperty("jpeg").GetString()!));
        int width = c.GetProperty("width").GetInt32(), height = c.GetProperty("height").GetInt32();
        PngImage upright = PictureFile.ReadUpright(path, width, height);
        Assert.Equal((width, height), (upright.Width, upright.Height));
        Assert.Equal(Convert.FromBase64String(c.GetProperty("rgb").GetString()!), upright.Pixels);
        Assert.Equal((13, 7), (PictureFile.Read(path).Width, PictureFile.Read(path).Height));
        if (orientation >= 5)
        {
            var e = Assert.Throws<InvalidFileException>(() => PictureFile.ReadUpright(path, 13, 7));
            Assert.Equal($"{path}: the picture is 7x13 upright; 13x7 is needed", e.Message);
        }
    }

    [Fact]
    public void Picture_file_tells_png_from_jpeg_by_the_bytes()
    {
        string jpeg = _dir.Write("really-a-jpeg.png", Baseline());
        string png = _dir.File("really-a-png.jpg");
        PngFile.Write(png, new PngImage(2, 1, 3, [1, 2, 3, 4, 5, 6]));
        Assert.Equal(JpegFile.Read(jpeg).Pixels, PictureFile.Read(jpeg).Pixels);
        Assert.Equal([1, 2, 3, 4, 5, 6], PictureFile.Read(png, 2, 1).Pixels);
        var e = Assert.Throws<InvalidFileException>(() => PictureFile.Read(jpeg, 8, 8));
        Assert.Equal($"{jpeg}: the picture is 37x21; 8x8 is needed", e.Message);
        string gif = _dir.Write("anim.gif", "GIF89a\x01\x00\x01\x00"u8.ToArray());
        e = Assert.Throws<InvalidFileException>(() => PictureFile.Read(gif));
        Assert.Equal($"{gif}: not a PNG, JPEG, WebP or BMP picture (the file starts as none of them; other formats are not read)", e.Message);
    }

    private void AssertRefused(byte[] bytes, string name, string problem)
    {
        string path = _dir.Write(name, bytes);
        var e = Assert.Throws<InvalidFileException>(() => JpegFile.Read(path));
        Assert.Equal($"{path}: {problem}", e.Message);
    }

    /// <summary>The JPEG with an APP1 Exif segment after SOI holding <see cref="ExifTiff.WithUserComment"/>.</summary>
    private static byte[] WithExif(byte[] jpeg, byte[] comment, bool little)
    {
        byte[] segment = [.. "Exif\0\0"u8, .. ExifTiff.WithUserComment(comment, little)];
        var length = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(length, (ushort)(segment.Length + 2));
        return [0xFF, 0xD8, 0xFF, 0xE1, .. length, .. segment, .. jpeg.AsSpan(2)];
    }

    /// <summary>Where the first SOF segment's data (its precision byte) is.</summary>
    private static int FrameHeader(byte[] jpeg)
    {
        int at = 2;
        while (jpeg[at + 1] is not (0xC0 or 0xC1 or 0xC2))
            at += 2 + BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(at + 2));
        return at + 4;
    }
}
