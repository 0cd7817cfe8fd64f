using System.Numerics;

namespace Sd.Cli.Commands;

/// <summary>
/// A1111's natural_sort_key order for file names (shared.listfiles): runs of digits compare as numbers, the text
/// between them lowercased ("img2" before "img10"); names equal that way fall back to ordinal order, so a listing is
/// the same on every run (Python's sort keeps os.listdir's order there, which the file system chooses).
/// </summary>
public sealed class NaturalOrder : IComparer<string>
{
    public static NaturalOrder Instance { get; } = new();

    public int Compare(string? x, string? y)
    {
        if (x is null || y is null)
        {
            return x is null ? (y is null ? 0 : -1) : 1;
        }
        int i = 0, j = 0;
        while (i < x.Length && j < y.Length)
        {
            bool digits = char.IsAsciiDigit(x[i]);
            if (digits != char.IsAsciiDigit(y[j]))
            {
                // re.split alternates text and numbers from a text part: a number meets text only where one text part
                // ended, so the shorter text comes first (as Python's string comparison puts a prefix first).
                return digits ? -1 : 1;
            }
            int xEnd = Run(x, i, digits), yEnd = Run(y, j, digits);
            int order = digits
                ? BigInteger.Parse(x.AsSpan(i, xEnd - i)).CompareTo(BigInteger.Parse(y.AsSpan(j, yEnd - j)))
                : string.CompareOrdinal(x[i..xEnd].ToLowerInvariant(), y[j..yEnd].ToLowerInvariant());
            if (order != 0)
            {
                return order;
            }
            i = xEnd;
            j = yEnd;
        }
        int lengths = (x.Length - i).CompareTo(y.Length - j);
        return lengths != 0 ? lengths : string.CompareOrdinal(x, y);
    }

    /// <summary>The end of the run of digits (or of other characters) that starts at <paramref name="start"/>.</summary>
    private static int Run(string s, int start, bool digits)
    {
        int end = start;
        while (end < s.Length && char.IsAsciiDigit(s[end]) == digits) end++;
        return end;
    }
}
