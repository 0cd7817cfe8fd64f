using System.IO.Compression;
using System.Text;

namespace Sd.Loaders.Png;

/// <summary>
/// PNG text chunks (PNG spec 11.3.4): tEXt, Latin-1, for text that fits it; iTXt, UTF-8 and optionally
/// zlib-compressed, for any other Unicode, as PIL writes them (A1111's "parameters" of a non-Latin-1 prompt); zTXt,
/// zlib-compressed Latin-1, read as Pillow reads it (into the same text).
/// </summary>
internal static class PngText
{
    private const int MaxKeywordLength = 79;

    /// <summary>
    /// Most text the compressed iTXt and zTXt chunks of one file may inflate to, all together (each chunk alone is small, but a
    /// file can hold thousands): metadata, not a payload.
    /// </summary>
    public const int MaxInflatedText = 1 << 20;

    private static readonly Encoding StrictUtf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The chunk for one text entry: tEXt (keyword, NUL, Latin-1 text) when the value is Latin-1, else iTXt (keyword,
    /// NUL, compression flag and method 0 and 0, an empty language tag and translated keyword, NUL each, UTF-8 text).
    /// </summary>
    public static (byte[] Type, byte[] Data) Chunk(string keyword, string value)
    {
        bool latin1 = IsLatin1(value);
        byte[] encoded = latin1 ? Encoding.Latin1.GetBytes(value) : StrictUtf8.GetBytes(value);
        int prefix = keyword.Length + (latin1 ? 1 : 5);
        var chunk = new byte[prefix + encoded.Length];
        Encoding.Latin1.GetBytes(keyword, chunk);
        encoded.CopyTo(chunk, prefix);
        return (latin1 ? "tEXt"u8.ToArray() : "iTXt"u8.ToArray(), chunk);
    }

    private static bool IsLatin1(string value) => value.AsSpan().IndexOfAnyExceptInRange('\0', '\u00FF') < 0;

    /// <summary>
    /// The text chunk rules (PNG spec 11.3.4.3): a keyword of 1-79 printable Latin-1 characters without leading,
    /// trailing or doubled spaces; a text without NUL (which separates keyword and text in tEXt), and valid UTF-16
    /// (no lone surrogate, which UTF-8 cannot encode) where it is not Latin-1.
    /// </summary>
    public static void Validate(PngImage image)
    {
        foreach (var (keyword, value) in image.Text)
        {
            if (keyword.Length is 0 or > MaxKeywordLength)
            {
                throw new ArgumentException(
                    $"text keyword '{keyword}' is {keyword.Length} characters; PNG allows 1 to {MaxKeywordLength}",
                    nameof(image));
            }
            foreach (char c in keyword)
            {
                if (c is < ' ' or > '~' and < '\u00A1' or > '\u00FF')
                {
                    throw new ArgumentException(
                        $"text keyword '{keyword}' contains U+{(int)c:X4}; only printable Latin-1 is allowed",
                        nameof(image));
                }
            }
            if (keyword[0] == ' ' || keyword[^1] == ' ' || keyword.Contains("  ", StringComparison.Ordinal))
            {
                throw new ArgumentException(
                    $"text keyword '{keyword}' has leading, trailing or consecutive spaces", nameof(image));
            }
            int nul = value.IndexOf('\0');
            if (nul >= 0)
            {
                throw new ArgumentException($"text '{keyword}' contains U+0000 at {nul}; PNG text holds no NUL", nameof(image));
            }
            for (int i = 0; i < value.Length; i++)
            {
                if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
                {
                    i++; // a pair: one code point past U+FFFF
                }
                else if (char.IsSurrogate(value[i]))
                {
                    throw new ArgumentException(
                        $"text '{keyword}' contains a lone surrogate U+{(int)value[i]:X4}, which UTF-8 cannot encode", nameof(image));
                }
            }
        }
    }

    /// <summary>
    /// A tEXt chunk is a Latin-1 keyword, NUL, Latin-1 text. When a keyword repeats, the first one wins. Keyword
    /// spacing rules are not enforced on reading: they do not affect what the text means.
    /// </summary>
    public static void AddText(byte[] chunk, Dictionary<string, string> text, string name)
    {
        int separator = Array.IndexOf(chunk, (byte)0);
        if (separator < 0)
            throw new InvalidFileException(name, "tEXt chunk has no NUL separator after its keyword");
        if (separator is 0 or > MaxKeywordLength)
            throw new InvalidFileException(name, $"tEXt chunk keyword is {separator} bytes; PNG allows 1 to {MaxKeywordLength}");
        string keyword = Encoding.Latin1.GetString(chunk, 0, separator);
        text.TryAdd(keyword, Encoding.Latin1.GetString(chunk, separator + 1, chunk.Length - separator - 1));
    }

    /// <summary>
    /// An iTXt chunk is a Latin-1 keyword, NUL, compression flag, compression method, a language tag and a translated
    /// keyword (each NUL-terminated), then UTF-8 text, zlib-compressed when the flag is 1 (inflated within what is
    /// left of <paramref name="inflateBudget"/>). The first of tEXt and iTXt with a keyword wins; a later one is not
    /// even inflated.
    /// </summary>
    public static void AddInternationalText(byte[] chunk, Dictionary<string, string> text, ref int inflateBudget, string name)
    {
        int separator = Array.IndexOf(chunk, (byte)0);
        if (separator is 0 or > MaxKeywordLength || separator < 0)
            throw new InvalidFileException(name, $"iTXt chunk keyword is not 1 to {MaxKeywordLength} bytes followed by NUL");
        int flags = separator + 1;
        int language = flags + 2 <= chunk.Length ? Array.IndexOf(chunk, (byte)0, flags + 2) : -1;
        int translated = language < 0 ? -1 : Array.IndexOf(chunk, (byte)0, language + 1);
        if (translated < 0)
            throw new InvalidFileException(name, "iTXt chunk is truncated before its text");
        if (chunk[flags] > 1 || chunk[flags + 1] != 0)
            throw new InvalidFileException(name, $"iTXt chunk has compression flag {chunk[flags]} and method {chunk[flags + 1]}; PNG defines 0 or 1 and 0");
        string keyword = Encoding.Latin1.GetString(chunk, 0, separator);
        if (text.ContainsKey(keyword))
            return;
        byte[] utf8 = chunk[(translated + 1)..];
        if (chunk[flags] == 1)
            utf8 = InflateText(utf8, ref inflateBudget, "iTXt", name);
        try
        {
            text.TryAdd(keyword, StrictUtf8.GetString(utf8));
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidFileException(name, $"iTXt chunk '{keyword}' is not valid UTF-8");
        }
    }

    /// <summary>
    /// A zTXt chunk is a Latin-1 keyword, NUL, compression method 0, then the Latin-1 text zlib-compressed (inflated
    /// within what is left of <paramref name="inflateBudget"/>). As for iTXt, an earlier entry of the keyword wins.
    /// </summary>
    public static void AddCompressedText(byte[] chunk, Dictionary<string, string> text, ref int inflateBudget, string name)
    {
        int separator = Array.IndexOf(chunk, (byte)0);
        if (separator is 0 or > MaxKeywordLength || separator < 0)
            throw new InvalidFileException(name, $"zTXt chunk keyword is not 1 to {MaxKeywordLength} bytes followed by NUL");
        if (separator + 1 >= chunk.Length || chunk[separator + 1] != 0)
            throw new InvalidFileException(name, "zTXt chunk has no compression method 0 after its keyword");
        string keyword = Encoding.Latin1.GetString(chunk, 0, separator);
        if (text.ContainsKey(keyword))
            return;
        text.Add(keyword, Encoding.Latin1.GetString(InflateText(chunk[(separator + 2)..], ref inflateBudget, "zTXt", name)));
    }

    private static byte[] InflateText(byte[] compressed, ref int budget, string type, string name)
    {
        using var output = new MemoryStream();
        try
        {
            using var zlib = new ZLibStream(new MemoryStream(compressed), CompressionMode.Decompress);
            var buffer = new byte[1 << 16];
            int read;
            while ((read = zlib.Read(buffer)) > 0)
            {
                if (read > budget)
                    throw new InvalidFileException(name, $"compressed {type} text inflates past {MaxInflatedText} bytes in all");
                budget -= read;
                output.Write(buffer, 0, read);
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException and not InvalidFileException)
        {
            // InvalidDataException for bad deflate data, ZLibException (an IOException) for a bad zlib header.
            throw new InvalidFileException(name, $"compressed {type} chunk is not valid zlib data: {e.Message}", e);
        }
        return output.ToArray();
    }
}
