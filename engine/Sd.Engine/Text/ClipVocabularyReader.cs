using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;
using Sd.Loaders;
using Sd.Loaders.IO;

namespace Sd.Engine.Text;

/// <summary>
/// Reads a CLIP tokenizer's <c>vocab.json</c> (a JSON object token → id) and <c>merges.txt</c> (one merge rule per
/// line: two symbols separated by a space; the line order is the rank). Anything malformed is an
/// <see cref="InvalidFileException"/> naming the file and line, so a corrupt or truncated download is caught at load
/// instead of silently changing the tokens.
/// </summary>
internal static class ClipVocabularyReader
{
    public const int MaxVocabularyEntries = 10_000_000;

    // Reference: transformers CLIPTokenizer keeps lines [1 : 49152 - 256 - 2 + 1] of merges.txt: at most 48,894
    // rules (CLIP's vocabulary is 256 bytes + their </w> forms + the merges + 2 special tokens = 49,408).
    public const int MaxMerges = 49152 - 256 - 2;

    private const long MaxFileBytes = 512L * 1024 * 1024;

    /// <summary>The vocabulary both ways; ids are unique and non-negative.</summary>
    public sealed record Vocabulary(Dictionary<string, int> Ids, Dictionary<int, string> Tokens);

    public static Vocabulary ReadVocabulary(string path)
    {
        byte[] bytes = ReadFile(path);
        var ids = new Dictionary<string, int>();
        var tokens = new Dictionary<int, string>();
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { MaxDepth = 2 });
        long position = 0;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw Invalid(path, bytes, reader.TokenStartIndex, "expected a JSON object mapping each token to its id");
            }
            // Read() throws JsonException on malformed or truncated input, so the loop ends at the closing brace.
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                position = reader.TokenStartIndex;
                string token = reader.GetString()!;
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out int id) || id < 0)
                {
                    throw Invalid(path, bytes, position, $"the id of token {Quote(token)} must be a non-negative integer");
                }
                if (!ids.TryAdd(token, id))
                {
                    throw Invalid(path, bytes, position, $"token {Quote(token)} is listed twice");
                }
                if (!tokens.TryAdd(id, token))
                {
                    throw Invalid(path, bytes, position, $"id {id} is given to both {Quote(tokens[id])} and {Quote(token)}");
                }
                if (ids.Count > MaxVocabularyEntries)
                {
                    throw Invalid(path, bytes, position, $"more than {MaxVocabularyEntries:N0} entries; not a tokenizer vocabulary");
                }
            }
            // Only whitespace may follow the object; anything else makes Read() throw.
            reader.Read();
        }
        catch (JsonException e)
        {
            throw new InvalidFileException(path, $"line {(e.LineNumber ?? 0) + 1}: not well-formed JSON ({e.Message})", e);
        }
        catch (InvalidOperationException e)
        {
            // GetString() on a token that is not valid UTF-8.
            throw Invalid(path, bytes, position, $"a token is not valid UTF-8 ({e.Message})");
        }
        return new Vocabulary(ids, tokens);
    }

    /// <summary>
    /// The merge rules in rank order. Reference: transformers reads the file with universal newlines, strips it,
    /// drops the first line and splits each line on whitespace. Here the first line is dropped only when it is a
    /// "#version" header (transformers would lose the first rule of a file without one).
    /// </summary>
    public static List<(string Left, string Right)> ReadMerges(string path)
    {
        byte[] bytes = ReadFile(path);
        char[] chars = new char[bytes.Length];
        if (Utf8.ToUtf16(bytes, chars, out int read, out int written, replaceInvalidSequences: false) != OperationStatus.Done)
        {
            throw Invalid(path, bytes, read, $"not valid UTF-8 at byte {read}");
        }
        string text = new string(chars, 0, written).Replace("\r\n", "\n").Replace('\r', '\n');
        string stripped = PythonText.Strip(text);
        if (stripped.Length == 0)
        {
            throw new InvalidFileException(path, "the file is empty");
        }
        int leading = 0;
        while (PythonText.IsSpace(text[leading]))
        {
            leading++;
        }
        int firstLineNumber = 1 + text.AsSpan(0, leading).Count('\n');
        string[] lines = stripped.Split('\n');
        var merges = new List<(string Left, string Right)>();
        int start = lines[0].TrimStart('\uFEFF').StartsWith("#version", StringComparison.Ordinal) ? 1 : 0;
        for (int i = start; i < lines.Length && merges.Count < MaxMerges; i++)
        {
            string[] symbols = SplitOnWhitespace(lines[i]);
            if (symbols.Length != 2)
            {
                throw new InvalidFileException(path,
                    $"line {firstLineNumber + i}: a merge rule is two symbols separated by a space, found {Quote(lines[i])}");
            }
            merges.Add((symbols[0], symbols[1]));
        }
        if (merges.Count == 0)
        {
            throw new InvalidFileException(path, "no merge rules after the header");
        }
        return merges;
    }

    private static byte[] ReadFile(string path)
    {
        InputFile.Check(path, "tokenizer file", MaxFileBytes);
        return File.ReadAllBytes(path);
    }

    /// <summary>Python's <c>str.split()</c>.</summary>
    private static string[] SplitOnWhitespace(string line)
    {
        var parts = new List<string>();
        for (int i = 0; i < line.Length;)
        {
            while (i < line.Length && PythonText.IsSpace(line[i]))
            {
                i++;
            }
            int start = i;
            while (i < line.Length && !PythonText.IsSpace(line[i]))
            {
                i++;
            }
            if (i > start)
            {
                parts.Add(line[start..i]);
            }
        }
        return parts.ToArray();
    }

    private static InvalidFileException Invalid(string path, byte[] bytes, long byteIndex, string problem)
    {
        int line = 1 + bytes.AsSpan(0, (int)Math.Min(byteIndex, bytes.Length)).Count((byte)'\n');
        return new InvalidFileException(path, $"line {line}: {problem}");
    }

    private static string Quote(string text) => "\"" + (text.Length > 60 ? text[..60] + "..." : text) + "\"";
}
