using System.Text.Json;

namespace Sd.Loaders.Tests;

/// <summary>
/// The reference files in Data/*.json: pictures of every format with Pillow's decodes of them, written by the
/// Python script beside each (png-formats-reference.py, jpeg-formats-reference.py, webp-formats-reference.py).
/// </summary>
internal static class ReferenceFiles
{
    public const string Png = "png-formats-reference.json";

    /// <summary>The JPEG cases; the first is a 37x21 4:2:0 baseline JPEG.</summary>
    public const string Jpeg = "jpeg-formats-reference.json";

    /// <summary>Pictures with the JPEG files A1111 saves for them (Pillow's encoder, piexif's EXIF).</summary>
    public const string JpegWriter = "jpeg-writer-reference.json";

    /// <summary>The WebP cases; the first is a 37x21 lossy (VP8) picture.</summary>
    public const string Webp = "webp-formats-reference.json";

    /// <summary>The BMP cases (the first a 37x21 24-bit picture saved by Pillow) and the files Pillow refuses.</summary>
    public const string Bmp = "bmp-formats-reference.json";

    public static JsonDocument Open(string json) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", json)));

    /// <summary>The names of the cases in <paramref name="section"/>, for a theory over them.</summary>
    public static TheoryData<string> Names(string json, string section = "cases")
    {
        var data = new TheoryData<string>();
        using JsonDocument reference = Open(json);
        foreach (JsonElement c in reference.RootElement.GetProperty(section).EnumerateArray())
            data.Add(c.GetProperty("name").GetString()!);
        return data;
    }

    /// <summary>The case named <paramref name="name"/> in <paramref name="section"/> (a clone, valid after the
    /// document is gone).</summary>
    public static JsonElement Case(string json, string name, string section = "cases")
    {
        using JsonDocument reference = Open(json);
        foreach (JsonElement c in reference.RootElement.GetProperty(section).EnumerateArray())
        {
            if (c.GetProperty("name").GetString() == name)
                return c.Clone();
        }
        throw new ArgumentException($"{json} has no case '{name}'", nameof(name));
    }

    /// <summary>Every file of <paramref name="section"/>'s cases (stored base64 under <paramref name="key"/>), in the
    /// JSON's order.</summary>
    public static List<byte[]> Files(string json, string key, string section = "cases")
    {
        using JsonDocument reference = Open(json);
        var files = new List<byte[]>();
        foreach (JsonElement c in reference.RootElement.GetProperty(section).EnumerateArray())
            files.Add(Convert.FromBase64String(c.GetProperty(key).GetString()!));
        return files;
    }
}
