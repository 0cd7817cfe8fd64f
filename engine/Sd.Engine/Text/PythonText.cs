using System.Globalization;
using System.Text;

namespace Sd.Engine.Text;

/// <summary>
/// The Python <c>str</c> semantics the reference tokenizer relies on where .NET differs: the whitespace of
/// <c>str.split()</c>/<c>str.strip()</c>, the Unicode White_Space property behind the <c>regex</c> module's <c>\s</c>,
/// and <c>str.lower()</c>, which applies the full mapping of U+0130 (to "i" + U+0307) and the Final_Sigma rule.
/// Categories and simple case mappings come from .NET's tables (Unicode 16 in .NET 10). Checked against Python 3.11
/// (Unicode 14) over every code point, they differ only for characters assigned after Unicode 14 (Python: category
/// Cn, dropped by the cleaner; here: kept) and U+1171E (Mn there, Mc here).
/// </summary>
internal static class PythonText
{
    /// <summary>
    /// Reference: CPython <c>Py_UNICODE_ISSPACE</c> (bidirectional class WS, B or S, or category Zs).
    /// All are in the BMP, so a UTF-16 char is enough.
    /// </summary>
    public static bool IsSpace(char c) => c is >= '\t' and <= '\r' or >= '\x1C' and <= ' ' or '\x85' or '\xA0'
        or '\u1680' or >= '\u2000' and <= '\u200A' or '\u2028' or '\u2029' or '\u202F' or '\u205F' or '\u3000';

    /// <summary>The Unicode White_Space property: Python's whitespace without U+001C..U+001F.</summary>
    public static bool IsWhiteSpace(int cp) => cp < 0x10000 && IsSpace((char)cp) && cp is not (>= 0x1C and <= 0x1F);

    /// <summary>
    /// Reference: Python's <c>float(str)</c> of a finite number: surrounding whitespace, any Unicode decimal digits, a
    /// single '_' between digits, a sign, a point, an exponent. Null for anything else, infinities and NaN included.
    /// </summary>
    public static double? ParseFiniteFloat(string text)
    {
        string trimmed = Strip(text);
        var ascii = new StringBuilder(trimmed.Length);
        for (int i = 0; i < trimmed.Length; i += char.IsSurrogatePair(trimmed, i) ? 2 : 1)
        {
            int digit = CharUnicodeInfo.GetDecimalDigitValue(trimmed, i);
            if (digit >= 0)
            {
                ascii.Append((char)('0' + digit));
            }
            else if (trimmed[i] == '_')
            {
                // Python allows '_' only between two digits.
                bool between = ascii.Length > 0 && char.IsAsciiDigit(ascii[^1]) && i + 1 < trimmed.Length
                    && CharUnicodeInfo.GetDecimalDigitValue(trimmed, i + 1) >= 0;
                if (!between) return null;
            }
            else if (trimmed[i] is '+' or '-' or '.' or 'e' or 'E')
            {
                ascii.Append(trimmed[i]);
            }
            else
            {
                return null;
            }
        }
        return double.TryParse(ascii.ToString(), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent,
            CultureInfo.InvariantCulture, out double value) && double.IsFinite(value) ? value : null;
    }

    /// <summary>Reference: <c>str.strip()</c> without arguments.</summary>
    public static string Strip(string text)
    {
        int start = 0, end = text.Length;
        while (start < end && IsSpace(text[start]))
        {
            start++;
        }
        while (end > start && IsSpace(text[end - 1]))
        {
            end--;
        }
        return text[start..end];
    }

    /// <summary>Reference: <c>str.lower()</c>. Lone surrogates are copied unchanged, as Python does.</summary>
    public static string Lower(string text)
    {
        if (!text.AsSpan().ContainsAnyExceptInRange('\0', '\x7F'))
        {
            return text.ToLowerInvariant();
        }
        var builder = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length;)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out Rune rune, out int used) != System.Buffers.OperationStatus.Done)
            {
                builder.Append(text[i]);
                i += used;
                continue;
            }
            switch (rune.Value)
            {
                case 0x130: // the only unconditional multi-character lowercase mapping (SpecialCasing.txt)
                    builder.Append("i\u0307");
                    break;
                case 0x3A3:
                    builder.Append(IsFinalSigma(text, i, used) ? '\u03C2' : '\u03C3');
                    break;
                default:
                    builder.Append(Rune.ToLowerInvariant(rune).ToString());
                    break;
            }
            i += used;
        }
        return builder.ToString();
    }

    /// <summary>
    /// Reference: CPython <c>handle_capital_sigma</c>: Σ is final when a cased letter precedes it and none follows,
    /// skipping case-ignorable characters both ways.
    /// </summary>
    private static bool IsFinalSigma(string text, int index, int length)
    {
        int j = index;
        bool casedBefore = false;
        while (j > 0)
        {
            Rune.DecodeLastFromUtf16(text.AsSpan(0, j), out Rune before, out int used);
            j -= used;
            if (!IsCaseIgnorable(before))
            {
                casedBefore = IsCased(before);
                break;
            }
        }
        if (!casedBefore)
        {
            return false;
        }
        for (j = index + length; j < text.Length;)
        {
            Rune.DecodeFromUtf16(text.AsSpan(j), out Rune after, out int used);
            j += used;
            if (!IsCaseIgnorable(after))
            {
                return !IsCased(after);
            }
        }
        return true;
    }

    // The Cased property: Lu, Ll, Lt plus Other_Lowercase/Other_Uppercase (PropList.txt, Unicode 14).
    private static readonly (int First, int Last)[] OtherCased =
    [
        (0xAA, 0xAA), (0xBA, 0xBA), (0x2B0, 0x2B8), (0x2C0, 0x2C1), (0x2E0, 0x2E4), (0x345, 0x345), (0x37A, 0x37A),
        (0x1D2C, 0x1D6A), (0x1D78, 0x1D78), (0x1D9B, 0x1DBF), (0x2071, 0x2071), (0x207F, 0x207F), (0x2090, 0x209C),
        (0x2160, 0x217F), (0x24B6, 0x24E9), (0x2C7C, 0x2C7D), (0xA69C, 0xA69D), (0xA770, 0xA770), (0xA7F8, 0xA7F9),
        (0xAB5C, 0xAB5F), (0x10780, 0x10780), (0x10783, 0x10785), (0x10787, 0x107B0), (0x107B2, 0x107BA),
        (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189),
    ];

    private static bool IsCased(Rune rune)
    {
        UnicodeCategory category = Rune.GetUnicodeCategory(rune);
        if (category is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter)
        {
            return true;
        }
        foreach ((int first, int last) in OtherCased)
        {
            if (rune.Value >= first && rune.Value <= last)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The Case_Ignorable property (Unicode D136): Mn, Me, Cf, Lm, Sk, and Word_Break MidLetter, MidNumLet and
    /// Single_Quote. Checked equal to Python 3.11's for every code point.
    /// </summary>
    private static bool IsCaseIgnorable(Rune rune) =>
        Rune.GetUnicodeCategory(rune) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
        || rune.Value is 0x27 or 0x2E or 0x3A or 0xB7 or 0x387 or 0x55F or 0x5F4 or 0x2018 or 0x2019 or 0x2024
            or 0x2027 or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;
}
