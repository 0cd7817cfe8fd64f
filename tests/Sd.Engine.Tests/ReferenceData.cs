using System.Text.Json;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>The reference JSON files in Data/ (copied beside the test binaries), each written by the script beside it.</summary>
internal static class ReferenceData
{
    /// <summary>Data/<paramref name="file"/>, parsed.</summary>
    public static JsonDocument Json(string file) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.BinariesFolder, "Data", file)));
}
