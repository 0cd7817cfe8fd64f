namespace Sd.Loaders.IO;

/// <summary>
/// Files written so that all of them appear or none does: each <see cref="Add"/> writes its bytes to a temporary file
/// beside its target and flushes it to disk, and <see cref="Commit"/> renames them all into place. Disposing before
/// the commit deletes the temporaries, so a command whose second output fails (a full disk) leaves neither behind.
/// Each rename replaces its target at once (a reader sees the old file or the new one, never neither). When a set
/// has several files, the commit first copies aside the ones it replaces (a copy that fails, on a full disk, fails the
/// commit before any rename), and should a rename fail it puts them back, so a failed commit leaves every target as
/// it was. The restored files are copies: hard links to the old ones do not follow them.
/// </summary>
public sealed class AtomicFileSet : IDisposable
{
    private readonly List<(string Temp, string Target)> _pending = [];

    /// <summary>Writes one file's bytes to its temporary; the target appears at <see cref="Commit"/>.</summary>
    /// <exception cref="IOException">Writing failed; the message names <paramref name="path"/>.</exception>
    public void Add(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        string target = AtomicFile.CheckTarget(path);
        string temp = AtomicFile.TemporaryBeside(target);
        AtomicFile.Track(temp, isFolder: false);
        _pending.Add((temp, target)); // before the write, so that Dispose deletes a partial temporary
        try
        {
            using var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
            write(stream);
            stream.Flush(flushToDisk: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw AtomicFile.Failure(path, temp, e);
        }
    }

    /// <summary>Renames every written file over its target, in the order they were added; all or none.</summary>
    public void Commit()
    {
        // Copies of the files this commit replaces, all made before the first rename (so the renames follow each
        // other closely), so that a failed rename can restore the ones before it. A set of one file needs none: its
        // rename is all or nothing already.
        var backups = new string?[_pending.Count];
        int renamed = 0;
        try
        {
            for (int i = 0; i < _pending.Count && _pending.Count > 1; i++)
            {
                backups[i] = File.Exists(_pending[i].Target) ? CopyAside(_pending[i].Target) : null;
            }
            for (; renamed < _pending.Count; renamed++)
            {
                (string temp, string target) = _pending[renamed];
                File.Move(temp, target, overwrite: true);
                AtomicFile.Untrack(temp);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            RollBack(renamed, backups);
            throw;
        }
        finally
        {
            foreach (string? backup in backups)
            {
                DeleteBackup(backup);
            }
        }
        _pending.Clear();
    }

    private static string CopyAside(string target)
    {
        string backup = AtomicFile.TemporaryBeside(target);
        AtomicFile.Track(backup, isFolder: false);
        try
        {
            File.Copy(target, backup);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            DeleteBackup(backup);
            throw;
        }
        return backup;
    }

    /// <summary>
    /// Puts back the first <paramref name="renamed"/> targets of a failed <see cref="Commit"/>, last first: one that
    /// existed gets its copy renamed back over it, one that did not is deleted. Best effort: the failure that stopped
    /// the commit is the one reported. A copy that cannot be put back stays where it is (no longer tracked, so not
    /// deleted): it is then the only one of the old file.
    /// </summary>
    private void RollBack(int renamed, string?[] backups)
    {
        for (int i = renamed - 1; i >= 0; i--)
        {
            string target = _pending[i].Target;
            try
            {
                if (backups[i] is { } backup)
                {
                    File.Move(backup, target, overwrite: true);
                    AtomicFile.Untrack(backup);
                    backups[i] = null;
                }
                else
                {
                    File.Delete(target);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                if (backups[i] is { } kept)
                {
                    AtomicFile.Untrack(kept);
                    backups[i] = null;
                }
            }
        }
    }

    private static void DeleteBackup(string? backup)
    {
        if (backup != null)
        {
            AtomicFile.TryDelete(backup);
            AtomicFile.Untrack(backup);
        }
    }

    public void Dispose()
    {
        foreach ((string temp, _) in _pending)
        {
            AtomicFile.TryDelete(temp);
            AtomicFile.Untrack(temp);
        }
        _pending.Clear();
    }
}
