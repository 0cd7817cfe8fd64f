using System.Text.Json;

namespace Sd.Loaders.Config;

/// <summary>
/// Checks every string of a parsed JSON document once, so later reads cannot fail. <see cref="JsonDocument"/> checks
/// structure only: a string with invalid UTF-8 bytes or an unpaired surrogate escape (<c>"\ud800"</c>) parses, and
/// its <see cref="JsonElement.GetString"/>, <see cref="JsonProperty.Name"/> or <see cref="JsonElement.GetRawText"/>
/// then throws <see cref="InvalidOperationException"/> wherever a loader first touches it.
/// </summary>
internal static class JsonText
{
    /// <summary>Throws <see cref="InvalidFileException"/> naming <paramref name="path"/> and the key if any string under <paramref name="element"/> is not valid text.</summary>
    public static void Validate(string path, JsonElement element, string what)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    string name = Decode(path, property, what);
                    Validate(path, property.Value, what == "" ? name : $"{what}.{name}");
                }
                break;
            case JsonValueKind.Array:
                int index = 0;
                foreach (JsonElement item in element.EnumerateArray())
                {
                    if (item.ValueKind is JsonValueKind.String or JsonValueKind.Object or JsonValueKind.Array)
                    {
                        Validate(path, item, $"{what}[{index}]");
                    }
                    index++;
                }
                break;
            case JsonValueKind.String:
                try
                {
                    element.GetString();
                }
                catch (InvalidOperationException e)
                {
                    throw new InvalidFileException(path, $"the string at '{Shown(what)}' is not valid text (invalid UTF-8 or an unpaired surrogate escape)", e);
                }
                break;
        }
    }

    private static string Decode(string path, JsonProperty property, string what)
    {
        try
        {
            return property.Name;
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidFileException(path, $"a key under '{Shown(what)}' is not valid text (invalid UTF-8 or an unpaired surrogate escape)", e);
        }
    }

    private static string Shown(string what) => what == "" ? "(top level)" : what.Length > 120 ? what[..120] + "..." : what;
}
