using System.Globalization;

namespace Sd.Loaders.Checkpoints;

/// <summary>
/// Reads dotted tensor names ("input_blocks.4.1.proj_in.weight") one part at a time, without allocating.
/// Every method either consumes the part it recognised from the front of <c>key</c> and returns true, or leaves
/// <c>key</c> untouched and returns false.
/// </summary>
internal static class KeyPath
{
    public static bool TryTakePrefix(ref ReadOnlySpan<char> key, string prefix)
    {
        if (!key.StartsWith(prefix, StringComparison.Ordinal))
            return false;
        key = key[prefix.Length..];
        return true;
    }

    /// <summary>Takes a block index and its trailing dot: "12.0.op.weight" gives 12 and leaves "0.op.weight".</summary>
    public static bool TryTakeIndex(ref ReadOnlySpan<char> key, out int index)
    {
        index = -1;
        int dot = key.IndexOf('.');
        // A leading zero ("01") would alias another block's index, so it is not a block index.
        if (dot <= 0 || (key[0] == '0' && dot > 1))
            return false;
        if (!int.TryParse(key[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out index))
            return false;
        key = key[(dot + 1)..];
        return true;
    }

    /// <summary>
    /// Renames the leading module of <paramref name="key"/> with the first matching (from, to) pair and puts
    /// <paramref name="parent"/> in front. Returns null when no pair matches.
    /// </summary>
    public static string? RenameModule(ReadOnlySpan<char> key, string parent, ReadOnlySpan<(string From, string To)> renames)
    {
        foreach (var (from, to) in renames)
        {
            if (key.StartsWith(from, StringComparison.Ordinal))
                return string.Concat(parent, to, key[from.Length..]);
        }
        return null;
    }

    /// <summary>
    /// Number of blocks 0..n-1 seen in a key set. A missing block in the middle means a truncated or hand-edited
    /// file, whose remaining blocks cannot be placed, so it is an error rather than something to guess around.
    /// </summary>
    public static int CountContiguous(HashSet<int> seen, string blockName, string filePath)
    {
        int max = -1;
        foreach (int index in seen)
            max = Math.Max(max, index);
        // The indices are distinct and non-negative, so they are 0..max exactly when there are max+1 of them.
        if (max + 1 == seen.Count)
            return seen.Count;
        int missing = 0;
        while (seen.Contains(missing))
            missing++;
        throw new InvalidFileException(filePath,
            $"{blockName}.{missing} is missing although {blockName}.{max} exists; the checkpoint's block layout is inconsistent");
    }

    public static InvalidFileException Inconsistent(string filePath, string problem) =>
        new(filePath, $"{problem}; the checkpoint's block layout is inconsistent");
}
