using System.Buffers.Binary;
using System.Text.Json;
using Sd.Loaders.Bmp;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Loaders.Tests;

/// <summary>
/// BMP pictures decode as Pillow 9.4 reads them: the pixels equal Pillow's byte for byte, gray, RGB or RGBA as Pillow's
/// mode says, for every header, depth, bitfields layout and run-length kind Pillow reads, and its quirks; the files
/// Pillow refuses are refused naming the file (Data/bmp-formats-reference.py wrote the files, with Pillow's encoder or
/// byte by byte, and the expectations).
/// </summary>
public sealed class BmpFormatTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Cases() => ReferenceFiles.Names(ReferenceFiles.Bmp);

    public static TheoryData<string> Refused() => ReferenceFiles.Names(ReferenceFiles.Bmp, "refused");

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decodes_as_pillow_does(string name)
    {
        JsonElement c = ReferenceFiles.Case(ReferenceFiles.Bmp, name);
        string path = _dir.Write(name + ".bmp", Convert.FromBase64String(c.GetProperty("bmp").GetString()!));
        PngImage image = PictureFile.Read(path);
        Assert.Equal((c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32()), (image.Width, image.Height));
        Assert.Equal(c.GetProperty("mode").GetString() switch { "1" or "L" => 1, "RGBA" => 4, _ => 3 }, image.Channels);
        byte[] expected = Convert.FromBase64String(c.GetProperty("pixels").GetString()!);
        int differing = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] != image.Pixels[i])
                differing++;
        }
        Assert.True(differing == 0, $"{differing} of {expected.Length} bytes differ from Pillow's");
        Assert.Empty(image.Text);
    }

    [Theory]
    [MemberData(nameof(Refused))]
    public void Files_pillow_refuses_are_refused_naming_the_file(string name)
    {
        JsonElement c = ReferenceFiles.Case(ReferenceFiles.Bmp, name, "refused");
        string path = _dir.Write(name + ".bmp", Convert.FromBase64String(c.GetProperty("bmp").GetString()!));
        var e = Assert.Throws<InvalidFileException>(() => PictureFile.Read(path));
        Assert.StartsWith(path + ": ", e.Message);
    }

    [Fact]
    public void A_required_size_is_checked_from_the_header()
    {
        JsonElement c = ReferenceFiles.Case(ReferenceFiles.Bmp, "pillow-rgb24");
        string path = _dir.Write("size.bmp", Convert.FromBase64String(c.GetProperty("bmp").GetString()!));
        Assert.Equal(37, PictureFile.ReadUpright(path, 37, 21).Width);
        var e = Assert.Throws<InvalidFileException>(() => PictureFile.Read(path, 64, 64));
        Assert.Equal($"{path}: the picture is 37x21; 64x64 is needed", e.Message);
        Assert.True(PictureFile.HasSignature("BM\0\0"u8));

        // A header past the pixel limit every picture reader shares is refused before anything else is read.
        byte[] huge = Convert.FromBase64String(c.GetProperty("bmp").GetString()!);
        BinaryPrimitives.WriteInt32LittleEndian(huge.AsSpan(18), 1 << 16);
        BinaryPrimitives.WriteInt32LittleEndian(huge.AsSpan(22), 1 << 13);
        string hugePath = _dir.Write("huge.bmp", huge);
        Assert.Equal($"{hugePath}: image size 65536x8192 is too large: {1L << 29} pixels, at most {PngFile.MaxPixels} supported",
            Assert.Throws<InvalidFileException>(() => PictureFile.Read(hugePath)).Message);
        Assert.Equal(37, BmpFile.Read(path).Width);
    }
}
