using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sd.Cli.Commands;

/// <summary>AUTOMATIC1111's infotext values: the generation and postprocessing parameters a PNG records.</summary>
internal static partial class Infotext
{
    /// <summary>
    /// A1111's parameters text read as its parse_generation_parameters reads it: the last line holds the parameters
    /// if at least 3 <c>Key: value</c> pairs are found in it; the lines before are the prompt, up to a line that starts
    /// with "Negative prompt:", which starts the negative prompt (each line trimmed, joined by line breaks). A
    /// quoted value is a JSON string (kept as written when it is not valid JSON), a <c>WxH</c> value gives two keys,
    /// KEY-1 and KEY-2, and an empty one is dropped (A1111 fails on it and goes on). A key given twice keeps its
    /// last value, as A1111's dict does.
    /// </summary>
    /// <returns>The keys in the order first given: Prompt and Negative prompt, then the parameters.</returns>
    internal static List<KeyValuePair<string, string>> Parse(string text)
    {
        string[] lines = Strip(text).Split('\n');
        List<(string Key, string Value)> pairs = Pairs(lines[^1]);
        int promptLines = lines.Length - 1;
        if (pairs.Count < 3)
        {
            promptLines++;
            pairs.Clear();
        }
        var prompt = new StringBuilder();
        var negative = new StringBuilder();
        bool negativeStarted = false;
        for (int i = 0; i < promptLines; i++)
        {
            string line = Strip(lines[i]);
            if (line.StartsWith("Negative prompt:", StringComparison.Ordinal))
            {
                negativeStarted = true;
                line = Strip(line[16..]);
            }
            // As A1111 joins them: a line break only after text, so empty lines before any are dropped.
            StringBuilder joined = negativeStarted ? negative : prompt;
            joined.Append(joined.Length == 0 ? "" : "\n").Append(line);
        }
        var values = new List<KeyValuePair<string, string>>();
        var positions = new Dictionary<string, int>(StringComparer.Ordinal);
        void Set(string key, string value)
        {
            if (positions.TryGetValue(key, out int at))
            {
                values[at] = new(key, value);
            }
            else
            {
                positions.Add(key, values.Count);
                values.Add(new(key, value));
            }
        }
        Set("Prompt", prompt.ToString());
        Set("Negative prompt", negative.ToString());
        foreach ((string key, string written) in pairs)
        {
            if (written.Length == 0)
            {
                continue;
            }
            string value = written.Length >= 2 && written[0] == '"' && written[^1] == '"' ? Unquote(written) : written;
            if (ImageSize().Match(value) is { Success: true } size)
            {
                Set(key + "-1", size.Groups[1].Value);
                Set(key + "-2", size.Groups[2].Value);
            }
            else
            {
                Set(key, value);
            }
        }
        return values;
    }

    /// <summary>
    /// The pairs A1111's re_param, <c>\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)</c>, finds in a line
    /// (re.findall): a key of a word character and one or more word characters, spaces, '-' or '/' right before a
    /// colon; then, after any spaces, a JSON-quoted value followed by a comma or the end, else the text up to the
    /// next comma. Found in one pass: a run of key characters that fails, fails from wherever in it a search starts,
    /// so the search goes on after it (a regular expression engine would start again at each character of it, which
    /// is quadratic on a long line without colons).
    /// </summary>
    internal static List<(string Key, string Value)> Pairs(string line)
    {
        var pairs = new List<(string, string)>();
        int p = 0;
        while (p < line.Length)
        {
            int start = p;
            while (start < line.Length && IsSpace(line[start])) start++;
            int first = WordLength(line, start);
            if (first == 0)
            {
                p = start + 1;
                continue;
            }
            int colon = start + first, keyCharacters = 1;
            for (int next; colon < line.Length && (next = line[colon] is ' ' or '-' or '/' ? 1 : WordLength(line, colon)) > 0; keyCharacters++)
            {
                colon += next;
            }
            if (keyCharacters < 2 || colon == line.Length || line[colon] != ':')
            {
                p = colon;
                continue;
            }
            int value = colon + 1;
            while (value < line.Length && IsSpace(line[value])) value++;
            int end = QuotedEnd(line, value);
            if (end < 0 || end < line.Length && line[end] != ',')
            {
                end = line.IndexOf(',', value) is var comma and >= 0 ? comma : line.Length;
            }
            pairs.Add((line[start..colon], line[value..end]));
            p = end + 1;
        }
        return pairs;
    }

    /// <summary>Where <c>"(?:\\.|[^\\"])+"</c> matched at <paramref name="at"/> ends, or -1 when it does not match there.</summary>
    private static int QuotedEnd(string line, int at)
    {
        if (at >= line.Length || line[at] != '"')
        {
            return -1;
        }
        for (int i = at + 1; i < line.Length; i++)
        {
            if (line[i] == '"')
            {
                return i > at + 1 ? i + 1 : -1;
            }
            if (line[i] == '\\' && ++i == line.Length)
            {
                return -1;
            }
        }
        return -1;
    }

    /// <summary>
    /// The UTF-16 length of the character at <paramref name="at"/> if it is Python's <c>\w</c> on text (a letter,
    /// digit or number of any script, the planes beyond the first included, or '_'); 0 if it is not.
    /// </summary>
    private static int WordLength(string line, int at)
    {
        if (at >= line.Length || !Rune.TryGetRuneAt(line, at, out Rune rune))
        {
            return 0;
        }
        return Rune.IsLetterOrDigit(rune) || Rune.IsNumber(rune) || rune.Value == '_' ? rune.Utf16SequenceLength : 0;
    }

    /// <summary>Python's str.strip(): the text without white space (<see cref="IsSpace"/>) at either end.</summary>
    private static string Strip(string text)
    {
        int start = 0, end = text.Length;
        while (start < end && IsSpace(text[start])) start++;
        while (end > start && IsSpace(text[end - 1])) end--;
        return text[start..end];
    }

    /// <summary>Python's <c>\s</c> on text (str.isspace): .NET's white space and the ASCII separators U+001C-U+001F.</summary>
    private static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';

    /// <summary>A quoted value as json.loads reads it, or as written when it is not a JSON string.</summary>
    private static string Unquote(string quoted)
    {
        try
        {
            return JsonSerializer.Deserialize<string>(quoted) ?? quoted;
        }
        catch (JsonException)
        {
            return quoted;
        }
    }

    [GeneratedRegex("""^(\d+)x(\d+)$""")]
    private static partial Regex ImageSize();

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
