namespace Sd.Loaders.IO;

/// <summary>
/// Writes a file so that it appears whole or not at all: the bytes go to a uniquely named temporary file in the same
/// directory, are flushed to disk, then replace the target with one rename. A crash or an exception mid-write never
/// leaves a half-written image, array or model behind. A symbolic link is written through: the file it names is
/// replaced.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        string fullPath = CheckTarget(path);
        string temp = Path.Combine(Path.GetDirectoryName(fullPath)!, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// The full path of the file a <see cref="Write"/> to <paramref name="path"/> replaces: the path itself, or the file
    /// a symbolic link there finally names (the link stays a link). Callers check their outputs with it before long
    /// work. A folder, a missing parent folder, and device or process files (under /dev and /proc on Unix: renaming a
    /// file over <c>/dev/null</c> would replace the device for every program, and a pipe such as <c>/dev/stdout</c>
    /// cannot be replaced atomically) are refused.
    /// </summary>
    /// <exception cref="ArgumentException">The path names a folder or a device or process file.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder the file would be in does not exist.</exception>
    public static string CheckTarget(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);
        if (Path.GetFileName(fullPath).Length == 0 || Directory.Exists(fullPath))
        {
            throw new ArgumentException($"'{path}' names a directory, not a file");
        }
        if (new FileInfo(fullPath).LinkTarget != null)
        {
            fullPath = File.ResolveLinkTarget(fullPath, returnFinalTarget: true)?.FullName ?? fullPath;
        }
        if (!OperatingSystem.IsWindows() && (IsUnder(fullPath, "/dev/") || IsUnder(fullPath, "/proc/") || IsUnder(Path.GetFullPath(path), "/dev/")))
        {
            throw new ArgumentException($"'{path}' is a device or process file; outputs are written to regular files");
        }
        if (Directory.Exists(fullPath))
        {
            throw new ArgumentException($"'{path}' links to a directory, not a file");
        }
        string folder = Path.GetDirectoryName(fullPath)!;
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"{path}: the folder {folder} does not exist");
        }
        return fullPath;
    }

    private static bool IsUnder(string path, string folder) => path.StartsWith(folder, StringComparison.Ordinal);

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the original error matters more than a leftover temporary file.
        }
    }
}
