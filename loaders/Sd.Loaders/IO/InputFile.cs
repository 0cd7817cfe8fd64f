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
    /// <see cref="FileNotFoundException"/> when there is none (or it is a folder), an <see cref="UnauthorizedAccessException"/>
    /// when this process may not read it (or look inside its folder), an <see cref="InvalidFileException"/> when it is
    /// empty (which pipes and devices are too) or longer than <paramref name="maxBytes"/>.
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
            // A folder this process may not search hides its files from stat as if they were absent.
            RequireReadable(path, what);
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
        RequireReadable(path, what);
        return info.Length;
    }

    /// <summary>The whole file at <paramref name="path"/>, checked first as <see cref="Check"/> does.</summary>
    public static byte[] ReadAll(string path, string what, long maxBytes = long.MaxValue)
    {
        Check(path, what, maxBytes);
        return File.ReadAllBytes(path);
    }

    /// <summary>The rest of <paramref name="stream"/>, read by a loader that decodes from memory.</summary>
    /// <param name="nameForErrors">The name the loader's messages give the stream's data (checked here, not null).</param>
    public static byte[] ReadAll(Stream stream, string nameForErrors)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(nameForErrors);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>
    /// Up to <c>head.Length</c> first bytes of the file at <paramref name="path"/> (checked as <see cref="Check"/>
    /// does), into <paramref name="head"/>; returns how many there were. A command that takes a picture or an array
    /// picks its reader by these, not by the file's name (a PNG saved as <c>.jpg</c> or with no extension).
    /// </summary>
    public static int ReadHead(string path, string what, Span<byte> head)
    {
        Check(path, what);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        return stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
    }

    /// <summary>
    /// Opens and closes the file to learn whether this process may read it, so that a denied file is reported as
    /// such, naming its kind, rather than as missing or from deep inside a loader. Only called once the path is known
    /// not to be empty (a pipe waiting for a writer would block the open) or not to exist.
    /// </summary>
    private static void RequireReadable(string path, string what)
    {
        try
        {
            using Microsoft.Win32.SafeHandles.SafeFileHandle handle = File.OpenHandle(path);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new UnauthorizedAccessException($"{path}: {what} cannot be read: permission denied", e);
        }
        catch (IOException) when (!File.Exists(path))
        {
            // Absent after all (or unreachable: a name too long, a loop of links): the caller says it is not found.
        }
    }
}
