using System.Globalization;
using System.Text;

namespace Sd.Engine.Text;

/// <summary>
/// Unicode NFC (canonical decomposition, canonical ordering, canonical composition, UAX #15) from the tables in
/// <see cref="UnicodeTables"/>. The reference applies <c>unicodedata.normalize("NFC", ...)</c>; .NET's
/// <c>string.Normalize</c> cannot stand in because it leaves non-ASCII text unchanged under InvariantGlobalization.
/// Linear in the input apart from sorting runs of combining marks (n log n), so hostile input stays cheap.
/// </summary>
internal static class UnicodeNormalizer
{
    // Hangul syllables decompose and compose arithmetically (Unicode 3.12), not through the tables.
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Dictionary<int, int[]> FullDecompositions = new();
    private static readonly Dictionary<long, int> Composites = new();
    private static readonly Dictionary<int, byte> CombiningClasses = new();

    static UnicodeNormalizer()
    {
        var oneLevel = new Dictionary<int, int[]>();
        int codePoint = -1;
        foreach (string entry in UnicodeTables.Decompositions.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int separator = entry.IndexOfAny(['=', '>']);
            codePoint = separator == 0 ? codePoint + 1 : ParseHex(entry[..separator]);
            int[] parts = Array.ConvertAll(entry[(separator + 1)..].Split(','), ParseHex);
            oneLevel[codePoint] = parts;
            if (entry[separator] == '=')
            {
                Composites[Key(parts[0], parts[1])] = codePoint;
            }
        }
        foreach (int source in oneLevel.Keys)
        {
            var expanded = new List<int>();
            Expand(source, oneLevel, expanded);
            FullDecompositions[source] = expanded.ToArray();
        }
        foreach (string entry in UnicodeTables.CombiningClasses.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] rangeAndClass = entry.Split(':');
            string[] bounds = rangeAndClass[0].Split('-');
            int first = ParseHex(bounds[0]);
            int last = bounds.Length == 2 ? ParseHex(bounds[1]) : first;
            byte combiningClass = byte.Parse(rangeAndClass[1], CultureInfo.InvariantCulture);
            for (int cp = first; cp <= last; cp++)
            {
                CombiningClasses[cp] = combiningClass;
            }
        }
    }

    /// <summary>The NFC form of <paramref name="text"/>, which must hold no lone surrogates.</summary>
    public static string ToNfc(string text)
    {
        // Below U+0300 nothing decomposes unstably, carries a combining class or composes as a second character.
        if (!text.AsSpan().ContainsAnyExceptInRange('\0', '\u02FF'))
        {
            return text;
        }
        var codePoints = new List<int>(text.Length);
        foreach (Rune rune in text.EnumerateRunes())
        {
            Decompose(rune.Value, codePoints);
        }
        SortCombiningMarks(codePoints);
        int length = Compose(codePoints);
        var builder = new StringBuilder(text.Length);
        for (int i = 0; i < length; i++)
        {
            builder.Append(new Rune(codePoints[i]).ToString());
        }
        return builder.ToString();
    }

    private static void Decompose(int cp, List<int> output)
    {
        int syllable = cp - SBase;
        if (syllable is >= 0 and < SCount)
        {
            output.Add(LBase + syllable / NCount);
            output.Add(VBase + syllable % NCount / TCount);
            if (syllable % TCount != 0)
            {
                output.Add(TBase + syllable % TCount);
            }
        }
        else if (FullDecompositions.TryGetValue(cp, out int[]? parts))
        {
            output.AddRange(parts);
        }
        else
        {
            output.Add(cp);
        }
    }

    /// <summary>Canonical ordering: a stable sort by combining class of every run of non-starters.</summary>
    private static void SortCombiningMarks(List<int> codePoints)
    {
        int i = 0;
        while (i < codePoints.Count)
        {
            if (CombiningClass(codePoints[i]) == 0)
            {
                i++;
                continue;
            }
            int start = i;
            while (i < codePoints.Count && CombiningClass(codePoints[i]) != 0)
            {
                i++;
            }
            if (i - start > 1)
            {
                // Class in the high bits, position in the low bits: the sort is stable without a stable sort.
                var keys = new long[i - start];
                for (int k = 0; k < keys.Length; k++)
                {
                    keys[k] = ((long)CombiningClass(codePoints[start + k]) << 32) | (uint)k;
                }
                int[] run = codePoints.GetRange(start, keys.Length).ToArray();
                Array.Sort(keys);
                for (int k = 0; k < keys.Length; k++)
                {
                    codePoints[start + k] = run[(int)(keys[k] & 0xFFFFFFFF)];
                }
            }
        }
    }

    /// <summary>Canonical composition in place; returns the new length.</summary>
    private static int Compose(List<int> codePoints)
    {
        int starterIndex = 0;
        // 256 (above every class) until a real starter is seen, so a leading non-starter never composes.
        int lastClass = CombiningClass(codePoints[0]) == 0 ? 0 : 256;
        int written = 1;
        for (int read = 1; read < codePoints.Count; read++)
        {
            int cp = codePoints[read];
            int cpClass = CombiningClass(cp);
            // Not blocked: nothing between the starter and cp, or everything between has a lower class.
            bool unblocked = lastClass == 0 || lastClass < cpClass;
            if (unblocked && TryCompose(codePoints[starterIndex], cp, out int composite))
            {
                codePoints[starterIndex] = composite;
                continue;
            }
            if (cpClass == 0)
            {
                starterIndex = written;
            }
            lastClass = cpClass;
            codePoints[written++] = cp;
        }
        return written;
    }

    private static bool TryCompose(int first, int second, out int composite)
    {
        int lIndex = first - LBase, vIndex = second - VBase;
        if (lIndex is >= 0 and < LCount && vIndex is >= 0 and < VCount)
        {
            composite = SBase + (lIndex * VCount + vIndex) * TCount;
            return true;
        }
        int sIndex = first - SBase, tIndex = second - TBase;
        if (sIndex is >= 0 and < SCount && sIndex % TCount == 0 && tIndex is > 0 and < TCount)
        {
            composite = first + tIndex;
            return true;
        }
        return Composites.TryGetValue(Key(first, second), out composite);
    }

    private static int CombiningClass(int cp) =>
        cp < 0x300 ? 0 : CombiningClasses.GetValueOrDefault(cp);

    private static void Expand(int cp, Dictionary<int, int[]> oneLevel, List<int> output)
    {
        if (oneLevel.TryGetValue(cp, out int[]? parts))
        {
            foreach (int part in parts)
            {
                Expand(part, oneLevel, output);
            }
        }
        else
        {
            output.Add(cp);
        }
    }

    private static long Key(int first, int second) => ((long)first << 21) | (uint)second;

    private static int ParseHex(string hex) => int.Parse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
}
