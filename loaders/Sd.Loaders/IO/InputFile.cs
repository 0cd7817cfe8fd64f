namespace Sd.Loaders.IO;

/// <summary>
/// What every loader checks before it opens a file to read: that the path names an existing, non-empty file. A pipe,
/// socket or device (<c>/dev/zero</c>) reports a length of 0 as well, and opening a pipe for reading waits for a
/// writer that may never come while reading a device may never end; refusing empty files before opening them refuses
/// those too, so a wrong path fails at once with its name instead of hanging.
/// </summary>
public static class InputFile
{
    /// <summary>
    /// The length of the file at <paramref name="path"/> (or the file a symbolic link there finally names): a
    /// <see cref="FileNotFoundException"/> when there is none (or it is a folder), an <see cref="InvalidFileException"/>
    /// when it is empty (which pipes and devices are too) or longer than <paramref name="maxBytes"/>.
    /// <paramref name="what"/> names the kind of file in the messages ("config file").
    /// </summary>
    public static long Check(string path, string what, long maxBytes = long.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            throw new FileNotFoundException($"{path}: is a folder, not a {what}", path);
        }
        var info = new FileInfo(path);
        if (info.LinkTarget != null)
        {
            // A link's own length is that of the name it holds: check the file it finally names.
            info = File.ResolveLinkTarget(path, returnFinalTarget: true) as FileInfo ?? info;
        }
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{path}: {what} not found", path);
        }
        if (info.Length == 0)
        {
            throw new InvalidFileException(path, $"{what} is empty (0 bytes), or is a pipe or device rather than a file");
        }
        if (info.Length > maxBytes)
        {
            throw new InvalidFileException(path, $"{what} is {info.Length:N0} bytes; more than {maxBytes:N0} is not a {what}");
        }
        return info.Length;
    }
}
