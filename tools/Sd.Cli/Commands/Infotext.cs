namespace Sd.Cli.Commands;

/// <summary>AUTOMATIC1111's infotext values: the generation and postprocessing parameters a PNG records.</summary>
internal static class Infotext
{
    /// <summary>
    /// A1111's quote for an infotext value: as it is, unless it holds a comma, a colon or a line break, then as a JSON
    /// string (json.dumps with ensure_ascii=False).
    /// </summary>
    internal static string Quote(string text) => text.IndexOfAny([',', ':', '\n']) < 0 ? text : JsonString(text);

    /// <summary>A text as a JSON string, quotes included (A1111's json.dumps with ensure_ascii=False).</summary>
    internal static string JsonString(string text)
    {
        var joined = new System.Text.StringBuilder();
        foreach (char c in text)
        {
            joined.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                < ' ' => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }
        return $"\"{joined}\"";
    }
}
