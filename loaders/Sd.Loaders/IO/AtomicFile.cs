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
        using var files = new AtomicFileSet();
        files.Add(path, write);
        files.Commit();
    }

    /// <summary>
    /// Checks, before long work, that a file can be created beside <paramref name="target"/> (a real path from
    /// <see cref="CheckTarget"/>): a read-only folder or an unusable name then fails at once, naming the path given,
    /// not after minutes of work with the name of a temporary file.
    /// </summary>
    /// <exception cref="IOException">No file can be created there; the message names <paramref name="path"/>.</exception>
    public static void CheckWritable(string path, string target)
    {
        string temp = TemporaryBeside(target);
        try
        {
            new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1).Dispose();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Failure(path, temp, e);
        }
        TryDelete(temp);
    }

    /// <summary>
    /// A fresh temporary name in the folder of <paramref name="target"/>. It does not repeat the target's name, so a
    /// target whose name is near the file system's 255-byte limit still gets one.
    /// </summary>
    internal static string TemporaryBeside(string target) =>
        Path.Combine(Path.GetDirectoryName(target)!, $".sd-{Guid.NewGuid():N}.tmp");

    /// <summary>A failure to write <paramref name="path"/> through <paramref name="temp"/>, told in terms of the path given.</summary>
    internal static IOException Failure(string path, string temp, Exception e) =>
        new($"cannot write {path}: {e.Message.Replace(temp, path, StringComparison.Ordinal)}", e);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> s_temporaries = new();

    /// <summary>Records a temporary file or folder for <see cref="DeleteTemporaries"/> until it is renamed or deleted.</summary>
    internal static void Track(string temp, bool isFolder) => s_temporaries[temp] = isFolder;

    internal static void Untrack(string temp) => s_temporaries.TryRemove(temp, out _);

    /// <summary>
    /// Deletes every temporary file and folder being written now: for a process stopped by a signal (Ctrl-C,
    /// SIGTERM), whose finally blocks do not run. Best effort; a write in progress may still add to a folder.
    /// </summary>
    public static void DeleteTemporaries()
    {
        foreach ((string temp, bool isFolder) in s_temporaries)
        {
            if (isFolder)
            {
                TryDeleteFolder(temp);
            }
            else
            {
                TryDelete(temp);
            }
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
            if (!Directory.Exists(real))
            {
                throw new DirectoryNotFoundException($"{path}: {folder} is a file, not a folder");
            }
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

    internal static void TryDeleteFolder(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort, as for files.
        }
    }

    internal static void TryDelete(string path)
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
