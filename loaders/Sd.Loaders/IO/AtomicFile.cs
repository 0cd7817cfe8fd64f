using System.Runtime.InteropServices;

namespace Sd.Loaders.IO;

/// <summary>
/// Writes a file so that it appears whole or not at all: the bytes go to a uniquely named temporary file in the same
/// directory, are flushed to disk, then replace the target with one rename. A crash or an exception mid-write never
/// leaves a half-written image, array or model behind. A symbolic link is written through: the file it names is
/// replaced.
/// </summary>
public static partial class AtomicFile
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
    /// The real path of the file a <see cref="Write"/> to <paramref name="path"/> replaces: symbolic links are followed,
    /// in the folders and at the file itself (a link stays a link and the file it names is replaced). Callers check
    /// their outputs with it before long work; two outputs with the same real path are the same file. A folder, a
    /// missing parent folder, and system files (under /dev, except the ordinary files of /dev/shm, /proc and /sys on
    /// Unix) are refused: renaming a file over <c>/dev/null</c> would replace the device for every program, and a pipe
    /// such as <c>/dev/stdout</c> cannot be replaced atomically.
    /// </summary>
    /// <exception cref="ArgumentException">The path names a folder or a system file.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder the file would be in does not exist.</exception>
    public static string CheckTarget(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);
        if (Path.GetFileName(fullPath).Length == 0 || Directory.Exists(fullPath))
        {
            throw new ArgumentException($"'{path}' names a directory, not a file");
        }
        for (int links = 0; ; links++)
        {
            string folder = Path.GetDirectoryName(fullPath)!;
            string real = RealFolder(folder) ?? throw new DirectoryNotFoundException($"{path}: the folder {folder} does not exist");
            fullPath = Path.Combine(real, Path.GetFileName(fullPath));
            if (new FileInfo(fullPath).LinkTarget is not { } link)
            {
                break;
            }
            if (links == MaxLinks)
            {
                throw new IOException($"{path}: more than {MaxLinks} symbolic links to follow");
            }
            fullPath = Path.GetFullPath(link, real);
        }
        if (Directory.Exists(fullPath))
        {
            throw new ArgumentException($"'{path}' links to a directory, not a file");
        }
        if (IsSystemFile(fullPath))
        {
            throw new ArgumentException($"'{path}' is a device or system file ({fullPath}); outputs are written to regular files");
        }
        return fullPath;
    }

    /// <summary>Links followed before giving up, as Linux's path resolution does (ELOOP).</summary>
    private const int MaxLinks = 40;

    /// <summary>The folder with every symbolic link in it resolved (realpath), or null if it does not exist.</summary>
    private static string? RealFolder(string folder)
    {
        if (OperatingSystem.IsWindows())
        {
            return Directory.Exists(folder) ? folder : null;
        }
        nint resolved = RealPath(folder, 0);
        if (resolved == 0)
        {
            return null;
        }
        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            Free(resolved);
        }
    }

    private static bool IsSystemFile(string realPath) =>
        !OperatingSystem.IsWindows()
        && ((IsUnder(realPath, "/dev/") && !IsUnder(realPath, "/dev/shm/")) || IsUnder(realPath, "/proc/") || IsUnder(realPath, "/sys/"));

    private static bool IsUnder(string path, string folder) => path.StartsWith(folder, StringComparison.Ordinal);

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPath(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);

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
