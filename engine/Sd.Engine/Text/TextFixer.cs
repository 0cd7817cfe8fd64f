using System.Globalization;
using System.Net;
using System.Text;

namespace Sd.Engine.Text;

/// <summary>
/// The parts of ftfy 6.1.1's <c>fix_text</c> (default config) that apply to prompts: HTML unescaping, C1 controls
/// read as Windows-1252, Latin ligatures, character width, curly quotes, line breaks, lone surrogates, terminal
/// escapes, control characters and NFC, repeated until nothing changes.
/// Not reproduced: <c>fix_encoding</c> (mojibake repair, a large heuristic that leaves ordinary text alone), and named
/// entities that only HTML5 defines (ftfy knows ~2,200 names, .NET's WebUtility the ~250 of HTML 4, which include
/// every common one: &amp;amp; &amp;lt; &amp;quot; &amp;nbsp; &amp;hellip; &amp;rsquo; and the accented letters).
/// </summary>
internal static class TextFixer
{
    // Reference: ftfy TextFixerConfig.max_decode_length (code points per segment).
    private const int MaxSegmentCodePoints = 1_000_000;

    // Entities nested deeper than this stay partly escaped; ftfy has no limit, but each level costs a pass over the
    // text, and a prompt of nested "&amp;amp;..." must not take quadratic time.
    private const int MaxPasses = 16;

    // Windows-1252 for bytes 0x80..0x9F; the five it leaves undefined map to themselves (ftfy's "sloppy" codec).
    private const string Windows1252High =
        "\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F" +
        "\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178";

    // Reference: ftfy.chardata.LIGATURES.
    private static readonly Dictionary<char, string> Ligatures = new()
    {
        ['\u0132'] = "IJ", ['\u0133'] = "ij", ['\u0149'] = "\u02BCn", ['\u01F1'] = "DZ", ['\u01F2'] = "Dz",
        ['\u01F3'] = "dz", ['\u01C4'] = "D\u017D", ['\u01C5'] = "D\u017E", ['\u01C6'] = "d\u017E", ['\u01C7'] = "LJ",
        ['\u01C8'] = "Lj", ['\u01C9'] = "lj", ['\u01CA'] = "NJ", ['\u01CB'] = "Nj", ['\u01CC'] = "nj",
        ['\uFB00'] = "ff", ['\uFB01'] = "fi", ['\uFB02'] = "fl", ['\uFB03'] = "ffi", ['\uFB04'] = "ffl",
        ['\uFB05'] = "\u017Ft", ['\uFB06'] = "st",
    };

    private static readonly Dictionary<char, string> WidthMap = ParseWidthMap();

    /// <summary>Reference: <c>ftfy.fix_text(text)</c>, with the limits above.</summary>
    public static string FixText(string text)
    {
        var output = new StringBuilder(text.Length);
        bool unescapeHtml = true;
        for (int start = 0; start < text.Length;)
        {
            int end = text.IndexOf('\n', start) + 1;
            end = LimitCodePoints(text, start, end == 0 ? text.Length : end);
            string segment = text[start..end];
            // "auto": a literal '<' means real HTML, so entities stay, in this line and every later one.
            unescapeHtml &= !segment.Contains('<');
            output.Append(FixSegment(segment, unescapeHtml));
            start = end;
        }
        return output.ToString();
    }

    /// <summary>Reference: ftfy.fix_and_explain's loop over the fixers, in ftfy's order.</summary>
    private static string FixSegment(string text, bool unescapeHtml)
    {
        for (int pass = 0; pass < MaxPasses; pass++)
        {
            string before = text;
            if (unescapeHtml)
            {
                text = UnescapeHtml(text);
            }
            text = MapChars(text, c => c is >= '\x80' and <= '\x9F' ? Windows1252High[c - 0x80].ToString() : null);
            text = MapChars(text, c => Ligatures.GetValueOrDefault(c));
            text = MapChars(text, c => WidthMap.GetValueOrDefault(c));
            text = MapChars(text, c => c switch
            {
                '\u02BC' or >= '\u2018' and <= '\u201B' => "'",
                >= '\u201C' and <= '\u201F' => "\"",
                _ => null,
            });
            // fix_line_breaks; its U+0085 never gets here, the C1 fix above has made it "\u2026".
            text = text.Replace("\r\n", "\n");
            text = MapChars(text, c => c is '\r' or '\u2028' or '\u2029' ? "\n" : null);
            text = ReplaceLoneSurrogates(text);
            text = RemoveTerminalEscapes(text);
            text = MapChars(text, c => IsRemovedControl(c) ? "" : null);
            text = UnicodeNormalizer.ToNfc(text);
            if (text == before)
            {
                break;
            }
        }
        return text;
    }

    /// <summary>Reference: ftfy.fixes.unescape_html: every <c>&amp;#?[0-9A-Za-z]{1,24};</c> that names a character.</summary>
    private static string UnescapeHtml(string text)
    {
        int amp = text.IndexOf('&');
        if (amp < 0)
        {
            return text;
        }
        var output = new StringBuilder(text.Length);
        output.Append(text, 0, amp);
        int i = amp;
        while (i < text.Length)
        {
            if (text[i] == '&' && TryMatchEntity(text, i, out int length) && Unescape(text.Substring(i, length)) is { } value)
            {
                output.Append(value);
                i += length;
            }
            else
            {
                output.Append(text[i++]);
            }
        }
        return output.ToString();
    }

    private static bool TryMatchEntity(string text, int amp, out int length)
    {
        int bodyStart = amp + 1 < text.Length && text[amp + 1] == '#' ? amp + 2 : amp + 1;
        int end = bodyStart;
        while (end < text.Length && end - bodyStart < 24 && char.IsAsciiLetterOrDigit(text[end]))
        {
            end++;
        }
        length = end + 1 - amp;
        return end > bodyStart && end < text.Length && text[end] == ';';
    }

    /// <summary>The character(s) an entity stands for, or null to keep it as written.</summary>
    private static string? Unescape(string entity)
    {
        if (entity[1] == '#')
        {
            return UnescapeNumeric(entity[2..^1]);
        }
        string decoded = DecodeNamed(entity);
        if (decoded != entity)
        {
            return decoded;
        }
        // ftfy also reads all-caps names of lowercase entities ("&EACUTE;" is "É"), upper-casing the character the
        // Python way ("ß".upper() is "SS").
        string name = entity[1..^1];
        if (name.Any(char.IsAsciiLetterLower) || !name.Any(char.IsAsciiLetterUpper))
        {
            return null;
        }
        string lowerEntity = "&" + name.ToLowerInvariant() + ";";
        string lower = DecodeNamed(lowerEntity);
        return lower == lowerEntity ? null : lower.Replace("\u00DF", "SS").ToUpperInvariant();
    }

    /// <summary>
    /// An HTML 4 named entity, with the two whose character HTML5 (and so ftfy) changed: &amp;lang; and &amp;rang;
    /// are U+27E8/U+27E9, not U+2329/U+232A.
    /// </summary>
    private static string DecodeNamed(string entity) => WebUtility.HtmlDecode(entity) switch
    {
        "\u2329" => "\u27E8",
        "\u232A" => "\u27E9",
        var decoded => decoded,
    };

    /// <summary>Reference: Python's html.unescape of a whole "&amp;#...;" reference (else ftfy keeps the text).</summary>
    private static string? UnescapeNumeric(string body)
    {
        bool hex = body[0] is 'x' or 'X';
        string digits = hex ? body[1..] : body;
        if (digits.Length == 0 || !digits.All(hex ? char.IsAsciiHexDigit : char.IsAsciiDigit))
        {
            return null;
        }
        long value = 0;
        foreach (char digit in digits)
        {
            // Saturate: anything above U+10FFFF decodes the same way.
            value = Math.Min(value * (hex ? 16 : 10) + Convert.ToInt32(digit.ToString(), 16), 0x110000);
        }
        return value switch
        {
            0 => "\uFFFD",
            0x0D => "\r",
            >= 0x80 and <= 0x9F => Windows1252High[(int)value - 0x80].ToString(),
            >= 0xD800 and <= 0xDFFF or > 0x10FFFF => "\uFFFD",
            >= 0x1 and <= 0x8 or 0xB or >= 0xE and <= 0x1F or 0x7F or >= 0xFDD0 and <= 0xFDEF => "",
            _ when (value & 0xFFFE) == 0xFFFE => "",
            _ => char.ConvertFromUtf32((int)value),
        };
    }

    /// <summary>Reference: ftfy.fixes.remove_terminal_escapes, <c>\x1b\[((?:\d|;)*)([a-zA-Z])</c>.</summary>
    private static string RemoveTerminalEscapes(string text)
    {
        if (!text.Contains('\x1B'))
        {
            return text;
        }
        var output = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length;)
        {
            if (text[i] == '\x1B' && i + 1 < text.Length && text[i + 1] == '[')
            {
                int end = i + 2;
                while (end < text.Length && DigitOrSemicolonLength(text, end) is > 0 and int length)
                {
                    end += length;
                }
                if (end < text.Length && char.IsAsciiLetter(text[end]))
                {
                    i = end + 1;
                    continue;
                }
            }
            output.Append(text[i++]);
        }
        return output.ToString();
    }

    /// <summary>Python's <c>(?:\d|;)</c>: \d is any decimal digit (category Nd), astral ones included.</summary>
    private static int DigitOrSemicolonLength(string text, int index)
    {
        if (text[index] == ';')
        {
            return 1;
        }
        bool valid = Rune.DecodeFromUtf16(text.AsSpan(index), out Rune rune, out int used) == System.Buffers.OperationStatus.Done;
        return valid && Rune.GetUnicodeCategory(rune) == UnicodeCategory.DecimalDigitNumber ? used : 0;
    }

    /// <summary>Reference: ftfy.chardata.CONTROL_CHARS, the characters remove_control_chars deletes.</summary>
    private static bool IsRemovedControl(char c) => c is <= '\x08' or '\x0B' or >= '\x0E' and <= '\x1F' or '\x7F'
        or >= '\u206A' and <= '\u206F' or '\uFEFF' or >= '\uFFF9' and <= '\uFFFC';

    /// <summary>Reference: ftfy.fixes.fix_surrogates. A .NET string already pairs valid surrogates.</summary>
    private static string ReplaceLoneSurrogates(string text)
    {
        if (!text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF'))
        {
            return text;
        }
        var output = new StringBuilder(text.Length);
        foreach (Rune rune in text.EnumerateRunes())
        {
            output.Append(rune.ToString());
        }
        return output.ToString();
    }

    /// <summary>Replaces each char <paramref name="map"/> gives a replacement for; returns the text itself when none.</summary>
    private static string MapChars(string text, Func<char, string?> map)
    {
        StringBuilder? output = null;
        for (int i = 0; i < text.Length; i++)
        {
            string? replacement = map(text[i]);
            if (replacement != null)
            {
                output ??= new StringBuilder(text.Length).Append(text, 0, i);
                output.Append(replacement);
            }
            else
            {
                output?.Append(text[i]);
            }
        }
        return output?.ToString() ?? text;
    }

    private static int LimitCodePoints(string text, int start, int end)
    {
        int codePoints = 0;
        for (int i = start; i < end; i += char.IsSurrogatePair(text, i) ? 2 : 1)
        {
            if (++codePoints > MaxSegmentCodePoints)
            {
                return i;
            }
        }
        return end;
    }

    private static Dictionary<char, string> ParseWidthMap()
    {
        var map = new Dictionary<char, string>();
        int codePoint = -1;
        foreach (string entry in UnicodeTables.WidthMap.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int separator = entry.IndexOf('>');
            codePoint = separator == 0 ? codePoint + 1 : int.Parse(entry[..separator], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            map[(char)codePoint] = string.Concat(entry[(separator + 1)..].Split(',')
                .Select(hex => char.ConvertFromUtf32(int.Parse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture))));
        }
        return map;
    }
}
