using System.Text.Json;

namespace Sd.Loaders.Tests;

/// <summary>Data/jpeg-formats-reference.json: JPEG files of every layout with Pillow's decodes of them
/// (written by Data/jpeg-formats-reference.py).</summary>
internal static class JpegReference
{
    public static JsonDocument Open() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", "jpeg-formats-reference.json")));

    /// <summary>The reference files, in the JSON's order (the first is a 37x21 4:2:0 baseline JPEG).</summary>
    public static List<byte[]> Files()
    {
        using JsonDocument reference = Open();
        var files = new List<byte[]>();
        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
            files.Add(Convert.FromBase64String(c.GetProperty("jpeg").GetString()!));
        return files;
    }
}
